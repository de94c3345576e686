"""OGC API - Features conformance of our own (core, GeoJSON, CRS, CQL2 filters) on both store backends."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
from pyproj import Transformer

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
RD = "http://www.opengis.net/def/crs/EPSG/0/28992"
TO84 = Transformer.from_crs("EPSG:28992", "OGC:CRS84", always_xy=True)


@pytest.fixture(scope="module")
def api(shared_twin):
    return shared_twin.client(), shared_twin.h("read")


def ids(body) -> list[str]:
    return [f["id"] for f in body["features"]]


def test_landing_conformance_and_collections(api):
    c, h = api
    landing = c.get("/").json()
    rels = {link["rel"]: link["href"] for link in landing["links"]}
    assert rels["conformance"] == "http://testserver/conformance"
    assert rels["data"] == "http://testserver/collections"
    assert rels["service-desc"] == "http://testserver/openapi.json"
    conf = c.get("/conformance").json()["conformsTo"]
    for cls in ("ogcapi-features-1/1.0/conf/core", "ogcapi-features-1/1.0/conf/geojson",
                "ogcapi-features-1/1.0/conf/oas30", "ogcapi-features-3/1.0/conf/filter", "cql2/1.0/conf/cql2-text"):
        assert f"http://www.opengis.net/spec/{cls}" in conf
    # OGC API - Processes is on the same service: linked from the landing page, declared, and the links resolve
    assert rels["http://www.opengis.net/def/rel/ogc/1.0/processes"] == "http://testserver/processes"
    assert rels["http://www.opengis.net/def/rel/ogc/1.0/job-list"] == "http://testserver/jobs"
    for cls in ("core", "json", "job-list", "dismiss", "ogc-process-description"):
        assert f"http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/{cls}" in conf
    assert c.get("/processes", headers=h).status_code == 200 and c.get("/jobs", headers=h).status_code == 200
    r = c.get("/collections", headers=h)
    assert r.status_code == 200
    cols = {col["id"]: col for col in r.json()["collections"]}
    assert set(cols) == {"buildings", "trees"}
    b = cols["buildings"]
    assert b["crs"] == [CRS84, RD] and b["storageCrs"] == RD
    x0, y0, x1, y1 = b["extent"]["spatial"]["bbox"][0]
    for x, y in [(155000, 463000), (155200, 463200), (85000, 446000)]:   # every feature inside, CRS84
        lon, lat = TO84.transform(x, y)
        assert x0 <= lon <= x1 and y0 <= lat <= y1
    assert 4.36 < x0 < 4.37 and 5.38 < x1 < 5.40 and 51.99 < y0 < 52.01 and 52.15 < y1 < 52.16
    one = c.get("/collections/buildings", headers=h).json()
    assert one["id"] == "buildings"
    assert any(link["rel"] == "items" and link["href"] == "http://testserver/collections/buildings/items"
               for link in one["links"])
    q = c.get("/collections/buildings/queryables", headers=h).json()
    assert q["properties"]["height"] == {"type": "number"} and q["properties"]["floors"] == {"type": "integer"}


def test_items_are_geojson_in_crs84(api):
    c, h = api
    r = c.get("/collections/buildings/items", headers=h)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/geo+json")
    assert r.headers["content-crs"] == f"<{CRS84}>"
    body = r.json()
    assert body["type"] == "FeatureCollection"
    assert body["numberMatched"] == 3 and body["numberReturned"] == 3
    assert ids(body) == ["a", "b", "c"]
    a = body["features"][0]
    assert a["properties"] == {"id": "a", "height": 10.0, "floors": 1, "name": "Alpha", "built": "2000-01-01T00:00:00Z"}
    lon, lat = a["geometry"]["coordinates"]
    ref = TO84.transform(155000, 463000)
    assert abs(lon - ref[0]) < 1e-7 and abs(lat - ref[1]) < 1e-7
    # the RD origin (Amersfoort) is at about 5.38721 E, 52.15517 N in WGS 84
    assert abs(lon - 5.38721) < 2e-5 and abs(lat - 52.15517) < 2e-5
    ring = body["features"][1]["geometry"]["coordinates"][0]
    corners = {tuple(round(v, 9) for v in TO84.transform(x, y)) for x, y in
               [(155100, 463100), (155200, 463100), (155200, 463200), (155100, 463200)]}
    assert {tuple(round(v, 9) for v in p) for p in ring} == corners


def test_scene_crs_on_request(api):
    c, h = api
    r = c.get("/collections/buildings/items", params={"crs": RD}, headers=h)
    assert r.status_code == 200 and r.headers["content-crs"] == f"<{RD}>"
    assert r.json()["features"][0]["geometry"]["coordinates"] == [155000.0, 463000.0]
    one = c.get("/collections/buildings/items/c", params={"crs": RD}, headers=h).json()
    assert one["geometry"]["coordinates"] == [85000.0, 446000.0]
    assert c.get("/collections/buildings/items", params={"crs": "EPSG:4326"}, headers=h).status_code == 400


def test_paging_with_limit_and_next_links(api):
    c, h = api
    url, seen, pages = "/collections/trees/items?limit=10", [], 0
    while url:
        body = c.get(url, headers=h).json()
        pages += 1
        assert body["numberMatched"] == 25
        seen += [f["properties"]["girth"] for f in body["features"]]
        links = {link["rel"]: link["href"] for link in body["links"]}
        assert links["self"].startswith("http://testserver/collections/trees/items")
        url = links.get("next")
        if url:
            assert parse_qs(urlsplit(url).query)["offset"] == [str(10 * pages)]
    assert pages == 3 and seen == [float(i) for i in range(25)]
    first = c.get("/collections/trees/items", headers=h).json()
    assert first["numberReturned"] == 10                     # default limit
    assert c.get("/collections/trees/items?limit=10000", headers=h).json()["numberReturned"] == 25
    for bad in ("0", "10001", "-1", "ten"):
        r = c.get(f"/collections/trees/items?limit={bad}", headers=h)
        assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json"


def test_bbox(api):
    c, h = api
    get = lambda b: c.get("/collections/buildings/items", params={"bbox": b}, headers=h)  # noqa: E731
    assert ids(get("5.38,52.15,5.40,52.16").json()) == ["a", "b"]
    assert ids(get("4.3,51.9,4.4,52.1").json()) == ["c"]
    assert ids(get("5.38,52.15,-100,5.40,52.16,100").json()) == ["a", "b"]
    assert get("0,0,1,1").json()["numberMatched"] == 0
    for bad in ("5.38,52.15,5.40", "a,b,c,d", "0,0,0,95", "0,10,1,5", "nan,0,1,1", "0,0,1,1,2", "170,0,-170,1"):
        assert get(bad).status_code == 400, bad


def test_datetime(api):
    c, h = api
    get = lambda d: c.get("/collections/buildings/items", params={"datetime": d}, headers=h)  # noqa: E731
    assert ids(get("2010-06-01T00:00:00Z").json()) == ["b"]
    assert ids(get("2010-06-01").json()) == ["b"]
    assert ids(get("../2005-01-01T00:00:00Z").json()) == ["a"]
    assert ids(get("2005-01-01T00:00:00Z/..").json()) == ["b", "c"]
    assert ids(get("2000-01-01T00:00:00Z/2010-06-01T00:00:00Z").json()) == ["a", "b"]
    for bad in ("yesterday", "../..", "2020-01-01/2010-01-01", "2020-13-45T00:00:00Z"):
        assert get(bad).status_code == 400, bad
    r = c.get("/collections/trees/items", params={"datetime": "2020-01-01"}, headers=h)
    assert r.status_code == 400 and "no time" in r.json()["detail"]


def test_property_filters(api):
    c, h = api
    assert ids(c.get("/collections/buildings/items?height=20", headers=h).json()) == ["b"]
    assert ids(c.get("/collections/buildings/items", params={"name": "O'Brien"}, headers=h).json()) == ["b"]
    assert ids(c.get("/collections/buildings/items?floors=3&height=30", headers=h).json()) == ["c"]
    assert c.get("/collections/buildings/items?floors=three", headers=h).status_code == 400
    r = c.get("/collections/buildings/items?colour=red", headers=h)
    assert r.status_code == 400 and "colour" in r.json()["detail"]


@pytest.mark.parametrize(("cql", "lang", "expected"), [
    ("height > 15 AND floors < 3", None, ["b"]),
    ("name LIKE 'O_B%'", "cql2-text", ["b"]),
    ("name IN ('Alpha', 'Gamma')", None, ["a", "c"]),
    ("NOT (height BETWEEN 15 AND 25)", None, ["a", "c"]),
    ("height * 2 >= 40", None, ["b", "c"]),
    ("built > TIMESTAMP('2005-01-01T00:00:00Z')", None, ["b", "c"]),
    ("S_INTERSECTS(geometry, POLYGON((5.38 52.15, 5.40 52.15, 5.40 52.16, 5.38 52.16, 5.38 52.15)))", None, ["a", "b"]),
    (json.dumps({"op": ">", "args": [{"property": "height"}, 25]}), "cql2-json", ["c"]),
    (json.dumps({"op": "and", "args": [{"op": "=", "args": [{"property": "floors"}, 1]},
                                       {"op": "isNull", "args": [{"property": "name"}]}]}), "cql2-json", []),
])
def test_cql2_filters(api, cql, lang, expected):
    c, h = api
    params = {"filter": cql} | ({"filter-lang": lang} if lang else {})
    r = c.get("/collections/buildings/items", params=params, headers=h)
    assert r.status_code == 200, r.text
    assert ids(r.json()) == expected
    assert r.json()["numberMatched"] == len(expected)


def test_cql2_is_null_finds_the_missing_values(twin):
    import geopandas as gpd
    from shapely.geometry import Point

    parcels = gpd.GeoDataFrame({"id": ["p", "q", "r"], "owner": ["city", None, "Delft Water"],
                                "area": [1.0, None, 3.0]},
                               geometry=[Point(155000 + 10 * i, 463000) for i in range(3)], crs="EPSG:28992")
    twin.scene.add_layer("parcels", parcels, kind="other")
    c, h = twin.client(), twin.h("read")
    is_null = {"op": "isNull", "args": [{"property": "owner"}]}
    for cql, lang, expected in [
        ("owner IS NULL", None, ["q"]), ("owner IS NOT NULL", None, ["p", "r"]), ("area IS NULL", None, ["q"]),
        (json.dumps(is_null), "cql2-json", ["q"]), (json.dumps({"op": "not", "args": [is_null]}), "cql2-json", ["p", "r"]),
        ("owner = 'city' OR owner IS NULL", None, ["p", "q"]),
    ]:
        params = {"filter": cql} | ({"filter-lang": lang} if lang else {})
        r = c.get("/collections/parcels/items", params=params, headers=h)
        assert r.status_code == 200, r.text
        assert ids(r.json()) == expected, cql


@pytest.mark.parametrize(("cql", "fix"), [
    ("height >", "write e.g. height > 15 AND name = 'Alpha'"),
    ("colour = 'red'", "(queryables: id, height, floors, name, built)"),
    ("name > 5", "quote text values (name = 'Alpha') and leave numbers bare"),
    ("height = 1; DROP TABLE cim_layers", "write e.g. height > 15"),
    ("UNKNOWNFN(height) = 1", "use comparisons, LIKE, IN, BETWEEN, IS NULL"),
    ("{\"op\": 1}", "write e.g. height > 15"),
])
def test_bad_filters_are_400(api, cql, fix):
    c, h = api
    r = c.get("/collections/buildings/items", params={"filter": cql}, headers=h)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert fix in r.json()["detail"]
    assert "Traceback" not in r.text and "/work" not in r.text


def test_single_items(api):
    c, h = api
    r = c.get("/collections/buildings/items/b", headers=h)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/geo+json")
    f = r.json()
    assert f["id"] == "b" and f["properties"]["height"] == 20.0
    assert {"rel": "self", "href": "http://testserver/collections/buildings/items/b",
            "type": "application/geo+json"} in f["links"]
    assert c.get("/collections/trees/items/7", headers=h).json()["properties"]["girth"] == 7.0
    assert c.get("/collections/buildings/items/zzz", headers=h).status_code == 404
    assert c.get("/collections/trees/items/25", headers=h).status_code == 404
    assert c.get("/collections/nothing/items", headers=h).status_code == 404


def test_a_replaced_layer_is_served_fresh(twin_embedded):
    from tests.api.conftest import buildings

    t = twin_embedded
    c, h = t.client(), t.h("read")
    assert c.get("/collections/buildings/items", headers=h).json()["numberMatched"] == 3
    assert c.get("/collections/buildings/items/c", headers=h).status_code == 200
    taller = buildings().iloc[:2].assign(height=[11.0, 22.0])
    t.scene.add_layer("buildings", taller, kind="buildings", replace=True)
    body = c.get("/collections/buildings/items", headers=h).json()
    assert body["numberMatched"] == 2 and [f["properties"]["height"] for f in body["features"]] == [11.0, 22.0]
    assert c.get("/collections/buildings/items/c", headers=h).status_code == 404


def test_a_replaced_layer_gets_a_new_index_and_new_texts(twin):
    """The spatial index and the encoded features are per layer version: a replaced layer is never answered from
    the old ones (bbox, both output CRS, both backends)."""
    from shapely import Point

    from tests.api.conftest import buildings

    c, h = twin.client(), twin.h("read")
    east, west = "/collections/buildings/items?bbox=5,52,6,53", "/collections/buildings/items?bbox=4,51,5,52.1"
    in_rd = f"&crs={RD}"
    assert ids(c.get(east, headers=h).json()) == ["a", "b"] and ids(c.get(west, headers=h).json()) == ["c"]
    assert c.get(east + in_rd, headers=h).json()["features"][0]["geometry"]["coordinates"] == [155000.0, 463000.0]
    moved = buildings()
    moved.loc[0, "geometry"] = Point(85010, 446010)          # "a" moves next to "c"
    moved["height"] = [1.0, 2.0, 3.0]
    twin.scene.add_layer("buildings", moved, kind="buildings", replace=True)
    body = c.get(east, headers=h).json()
    assert ids(body) == ["b"] and body["numberMatched"] == 1
    body = c.get(west + "&limit=1", headers=h).json()
    assert ids(body) == ["a"] and body["numberMatched"] == 2 and body["features"][0]["properties"]["height"] == 1.0
    assert any(link["rel"] == "next" for link in body["links"])
    a = c.get(west + in_rd, headers=h).json()["features"][0]
    assert a["id"] == "a" and a["geometry"]["coordinates"] == [85010.0, 446010.0]
    lon, lat = c.get(west, headers=h).json()["features"][0]["geometry"]["coordinates"]
    ref = TO84.transform(85010, 446010)
    assert abs(lon - ref[0]) < 1e-7 and abs(lat - ref[1]) < 1e-7


def test_a_northing_first_crs_is_output_and_read_in_its_axis_order(tmp_path):
    import geopandas as gpd
    from fastapi.testclient import TestClient

    import cim
    from api import Settings, create_app

    # EPSG:4547 (CGCS2000 / 3-degree Gauss-Kruger CM 114E) has X = northing first; a point in Wuhan
    e, n = 528770.24, 3386666.25
    scene = cim.Scene.create(str(tmp_path / "w.cim"), crs="EPSG:4547", name="Wuhan")
    scene.add_layer("b", gpd.GeoDataFrame({"id": ["p"]}, geometry=gpd.points_from_xy([e], [n]), crs="EPSG:4547"),
                    kind="buildings")
    uri = "http://www.opengis.net/def/crs/EPSG/0/4547"
    with TestClient(create_app(Settings(scene=str(tmp_path / "w.cim"), anonymous_read=True))) as c:
        page = c.get("/collections/b/items", params={"crs": uri}).json()
        assert page["features"][0]["geometry"]["coordinates"] == pytest.approx([n, e])
        one = c.get("/collections/b/items/p", params={"crs": uri})
        assert one.json()["geometry"]["coordinates"] == pytest.approx([n, e])
        assert one.headers["content-crs"] == f"<{uri}>"
        lon, lat = c.get("/collections/b/items").json()["features"][0]["geometry"]["coordinates"]
        assert 114.2 < lon < 114.4 and 30.5 < lat < 30.7                # CRS84 stays lon, lat
        # bbox in the storage CRS, northing first as the CRS says; easting first misses the point
        near = {"bbox-crs": uri, "bbox": f"{n - 5},{e - 5},{n + 5},{e + 5}"}
        assert c.get("/collections/b/items", params=near).json()["numberMatched"] == 1
        swapped = {"bbox-crs": uri, "bbox": f"{e - 5},{n - 5},{e + 5},{n + 5}"}
        r = c.get("/collections/b/items", params=swapped)
        assert r.status_code == 200 and r.json()["numberMatched"] == 0
        r = c.get("/collections/b/items", params={"bbox-crs": "http://www.opengis.net/def/crs/EPSG/0/3857",
                                                   "bbox": "0,0,1,1"})
        assert r.status_code == 400 and "bbox-crs" in r.json()["detail"]
    scene.close()
