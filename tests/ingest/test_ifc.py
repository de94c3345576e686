"""IFC: placement from IfcMapConversion or the caller, elements, storeys and the flood needs per building."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import shapely

import ingest
from cim.bim import BIMModel, Georeference
from cim.errors import CRSError, DataError, ValidationError

DATA = Path(__file__).parents[1] / "data" / "ingest"
PLACE = {"crs": "EPSG:28992", "eastings": 85000.0, "northings": 446000.0, "height": 1.5}


def test_bouwkunde_lands_near_its_map_conversion_in_rd_new():
    r = ingest.read(DATA / "bouwkunde_georeferenced.ifc")
    bim = r.bim
    assert isinstance(bim, BIMModel) and bim.schema == "IFC4"
    assert bim.crs.to_epsg() == 28992
    g = bim.georeference
    assert (g.source, round(g.eastings, 1), round(g.northings, 1)) == ("IfcMapConversion", 85104.7, 446805.1)
    el = bim.elements
    assert len(el) == 1 and el["ifc_class"].iloc[0] == "IfcBuildingElementProxy"
    assert el["name"].iloc[0] == "NL.IMBAG.Pand.0503100000032914-lod 0:351399"
    assert el["storey"].iloc[0] == "Level 1" and el["storey_elevation"].iloc[0] == 0.0
    xmin, ymin, xmax, ymax = el.total_bounds
    # the building's outline starts ~1.3 m west of the origin E 85104.7, N 446805.1 and spans 164 x 243 m
    assert xmin == pytest.approx(85103.43, abs=0.05) and ymin == pytest.approx(446740.04, abs=0.05)
    assert xmin < 85105 < xmax and ymin < 446805 < ymax
    props = json.loads(el["properties"].iloc[0])
    assert "Pset_BuildingElementProxyCommon" in props
    assert bim.lowest_floor_elevation == 0.0
    assert r.layers[f"bim_{bim.name}"].kind == "bim" and r.layers[f"bim_{bim.name}"].cim_level == 6


def _centroid(bim):
    return shapely.get_coordinates(bim.elements.geometry, include_z=True).mean(axis=0)


def test_ifcopenshell_geolocation_files_place_with_and_without_rotation():
    plain_path = DATA / "ifcos_geolocation-mapconversion.ifc"
    angle_path = DATA / "ifcos_geolocation-mapconversion-angle.ifc"
    for p in (plain_path, angle_path):                   # IfcProjectedCRS has an empty name: the CRS is needed
        with pytest.raises(CRSError, match=r"IfcProjectedCRS\.Name is empty.*crs="):
            ingest.read(p)
    plain = ingest.read(plain_path, crs="EPSG:28992").bim
    angle = ingest.read(angle_path, crs="EPSG:28992").bim
    # project in millimetres, no MapUnit: E 15000 mm = 15 m
    assert plain.georeference.eastings == pytest.approx(15.0) and plain.georeference.rotation_deg == 0.0
    assert angle.georeference.rotation_deg == pytest.approx(-30.0)
    assert len(plain.elements) == len(angle.elements) == 8       # 11 actuators, 3 without any representation
    assert len(ingest.read(plain_path, crs="EPSG:28992").skipped) == 3
    assert plain.elements.total_bounds == pytest.approx([17.0, -1.0, 32.0, 8.0], abs=1e-4)
    # the same local model, rotated about the map conversion's origin by -30 degrees (XAxisOrdinate -0.5)
    c0, c1 = _centroid(plain), _centroid(angle)
    t = np.radians(-30.0)
    local = c0[:2] - [15.0, 0.0]
    expect = [15.0 + np.cos(t) * local[0] - np.sin(t) * local[1], np.sin(t) * local[0] + np.cos(t) * local[1]]
    assert c1[:2] == pytest.approx(expect, abs=1e-6)


def test_placement_matches_ifcopenshell_util_geolocation():
    import ifcopenshell
    import ifcopenshell.util.geolocation as geo

    path = DATA / "ifcos_geolocation-mapconversion-angle.ifc"
    model = ifcopenshell.open(str(path))
    bim = ingest.read(path, crs="EPSG:28992").bim
    # a wall corner at local (2000, -1000, 0) mm maps to map units (mm) by ifcopenshell; ours is metres
    e, n, _ = geo.auto_xyz2enh(model, 2000.0, -1000.0, 0.0)
    ours = bim.georeference.apply([[2.0, -1.0, 0.0]])[0]
    assert ours[:2] == pytest.approx([e / 1000.0, n / 1000.0], abs=1e-9)


def test_model_without_georeference_is_refused_naming_both_fixes_then_placed():
    path = DATA / "ifcos_basic.ifc"
    with pytest.raises(CRSError, match=r"no IfcMapConversion.*\(1\) georeference it.*\(2\) pass placement="):
        ingest.read(path)
    bim = ingest.read(path, placement=PLACE).bim
    assert bim.georeference.source == "caller"
    el = bim.elements.set_index("ifc_class")
    assert sorted(el.index) == ["IfcBeam", "IfcSlab", "IfcWall"]
    # storeys at 0 and 3 m local, lifted by the caller's height 1.5 m
    assert sorted(s.elevation for s in bim.storeys) == [1.5, 4.5]
    assert el.loc["IfcSlab", "storey"] == "Ground Floor" and el.loc["IfcWall", "storey_elevation"] == 4.5
    (b,) = bim.buildings
    assert b.lowest_floor_elevation == 1.5 and b.storey_elevations == (1.5, 4.5) and b.ground_floor == "Ground Floor"
    xmin, ymin, _, _ = bim.elements.total_bounds
    assert 84990 < xmin < 85010 and 445990 < ymin < 446010


def test_ground_floor_doors_with_sill_heights():
    bim = ingest.read(DATA / "ifcos_project0-openings.ifc", placement=PLACE).bim
    assert sorted(bim.elements["ifc_class"].unique()) == ["IfcDoor", "IfcWall", "IfcWindow"]  # openings left out
    doors = bim.entrances
    assert len(doors) == 2 and {d.storey for d in doors} == {"My Storey"}
    for d in doors:
        assert d.sill_elevation == pytest.approx(1.5, abs=1e-5) and d.sill_height == pytest.approx(0.0, abs=1e-5)
        assert 85000 <= d.x <= 85004 and 446000 <= d.y <= 446007
    door = bim.properties(doors[0].guid)
    assert json.loads(door["BBIM_Door"]["Data"])["overall_height"] == 2.0
    assert {d.external for d in doors} == {None}                 # the model does not say


def test_internal_doors_are_not_entrances(tmp_path):
    import ifcopenshell
    import ifcopenshell.api.pset as pset

    model = ifcopenshell.open(str(DATA / "ifcos_project0-openings.ifc"))
    inner, outer = model.by_type("IfcDoor")
    pset.edit_pset(model, pset=pset.add_pset(model, product=inner, name="Pset_DoorCommon"),
                   properties={"IsExternal": False})
    pset.edit_pset(model, pset=pset.add_pset(model, product=outer, name="Pset_DoorCommon"),
                   properties={"IsExternal": True})
    path = tmp_path / "doors.ifc"
    model.write(str(path))
    bim = ingest.read(path, placement=PLACE).bim
    assert [(e.guid, e.external) for e in bim.entrances] == [(outer.GlobalId, True)]
    assert json.loads(bim.element(inner.GlobalId)["properties"])["Pset_DoorCommon"]["IsExternal"] is False


def test_placement_conflicts_and_bad_placements():
    with pytest.raises(ValidationError, match="drop placement="):
        ingest.read(DATA / "bouwkunde_georeferenced.ifc", placement=PLACE)
    with pytest.raises(CRSError, match="drop crs="):
        ingest.read(DATA / "bouwkunde_georeferenced.ifc", crs="EPSG:32631")
    with pytest.raises(ValidationError, match="unknown key"):
        ingest.read(DATA / "ifcos_basic.ifc", placement={**PLACE, "rotation": 30})
    with pytest.raises(ValidationError, match="projected"):
        Georeference(crs="EPSG:4326")


def test_truncated_and_non_ifc_files(tmp_path):
    cut = tmp_path / "cut.ifc"
    cut.write_bytes((DATA / "ifcos_basic.ifc").read_bytes()[:3000])
    with pytest.raises(DataError, match=r"cut\.ifc: "):
        ingest.read(cut, placement=PLACE)
    junk = tmp_path / "junk.ifc"
    junk.write_text("hello")
    with pytest.raises(DataError, match="not an IFC STEP file"):
        ingest.read(junk)


def _ifc2x3(path, *, metres: bool) -> Path:
    """A one-wall IFC2X3 model georeferenced the IFC2X3 way (ePSet_MapConversion / ePSet_ProjectedCRS on the
    project), local x pointing to map north (XAxisAbscissa 0, XAxisOrdinate 1)."""
    import ifcopenshell
    import ifcopenshell.api.aggregate as aggregate
    import ifcopenshell.api.context as context
    import ifcopenshell.api.geometry as geometry
    import ifcopenshell.api.owner.settings as owner_settings
    import ifcopenshell.api.pset as pset
    import ifcopenshell.api.root as root
    import ifcopenshell.api.spatial as spatial
    import ifcopenshell.api.unit as unit

    f = ifcopenshell.file(schema="IFC2X3")
    user = f.createIfcPersonAndOrganization(f.createIfcPerson(FamilyName="Test"), f.createIfcOrganization(Name="cim"))
    app = f.createIfcApplication(user.TheOrganization, "0.1", "cim-twin tests", "cim-twin")
    get_user, get_app = owner_settings.get_user, owner_settings.get_application
    owner_settings.get_user, owner_settings.get_application = (lambda _f: user), (lambda _f: app)
    try:
        project = root.create_entity(f, ifc_class="IfcProject", name="Test2x3")
        if metres:
            unit.assign_unit(f, units=[unit.add_si_unit(f, unit_type="LENGTHUNIT")])
        else:
            unit.assign_unit(f)                                            # millimetres
        model = context.add_context(f, context_type="Model")
        body = context.add_context(f, context_type="Model", context_identifier="Body", target_view="MODEL_VIEW",
                                   parent=model)
        site = root.create_entity(f, ifc_class="IfcSite", name="Site")
        building = root.create_entity(f, ifc_class="IfcBuilding", name="B")
        storey = root.create_entity(f, ifc_class="IfcBuildingStorey", name="Begane grond")
        aggregate.assign_object(f, relating_object=project, products=[site])
        aggregate.assign_object(f, relating_object=site, products=[building])
        aggregate.assign_object(f, relating_object=building, products=[storey])
        wall = root.create_entity(f, ifc_class="IfcWall", name="W1")
        rep = geometry.add_wall_representation(f, context=body, length=5.0, height=3.0, thickness=0.2)  # SI in
        geometry.assign_representation(f, product=wall, representation=rep)
        geometry.edit_object_placement(f, product=wall, matrix=np.eye(4))
        spatial.assign_container(f, relating_structure=storey, products=[wall])
        ps = pset.add_pset(f, product=project, name="ePSet_MapConversion")
        pset.edit_pset(f, pset=ps, properties={"Eastings": 85000.0, "Northings": 446000.0, "OrthogonalHeight": 0.5,
                                               "XAxisAbscissa": 0.0, "XAxisOrdinate": 1.0, "Scale": 1.0})
        crs = pset.add_pset(f, product=project, name="ePSet_ProjectedCRS")
        pset.edit_pset(f, pset=crs, properties={"Name": "EPSG:28992"})
    finally:
        owner_settings.get_user, owner_settings.get_application = get_user, get_app
    f.write(str(path))
    return path


def test_ifc2x3_epset_map_conversion_rotated_90_degrees(tmp_path):
    bim = ingest.read(_ifc2x3(tmp_path / "wall2x3.ifc", metres=True)).bim
    g = bim.georeference
    assert bim.schema == "IFC2X3" and g.source == "ePSet_MapConversion" and g.crs == "EPSG:28992"
    assert (g.eastings, g.northings, g.height, g.rotation_deg) == (85000.0, 446000.0, 0.5, 90.0)
    # the 5 m wall along local x runs north from the origin; it is 0.2 m thick (local y) -> west of it
    assert bim.elements.total_bounds == pytest.approx([84999.8, 446000.0, 85000.0, 446005.0], abs=1e-6)
    (st,) = bim.storeys
    assert (st.name, st.elevation) == ("Begane grond", 0.5)
    assert bim.buildings[0].ground_floor == "Begane grond"


def test_ifc2x3_in_millimetres_reads_map_values_in_project_units(tmp_path):
    """No MapUnit: the map conversion is in the project's unit (mm), as IFC says — 85000 mm east is 85 m."""
    bim = ingest.read(_ifc2x3(tmp_path / "wall2x3_mm.ifc", metres=False)).bim
    assert bim.georeference.eastings == pytest.approx(85.0) and bim.georeference.height == pytest.approx(0.0005)
    assert bim.elements.total_bounds == pytest.approx([84.8, 446.0, 85.0, 451.0], abs=1e-6)


def ifc_with_rooms(path: Path, rooms: dict[str, tuple[str, float]]) -> dict[str, str]:
    """IfcOpenShell's basic model (storeys "Ground Floor" and "Level 1") with 4 m x 3 m x 2.5 m IfcSpace boxes,
    ``{name: (storey, z of the floor in the model)}``, written to ``path``; their GlobalIds by name."""
    import ifcopenshell
    import ifcopenshell.api.aggregate as aggregate
    import ifcopenshell.api.geometry as geometry
    import ifcopenshell.api.root as root
    import ifcopenshell.util.representation as urep

    model = ifcopenshell.open(str(DATA / "ifcos_basic.ifc"))
    body = urep.get_context(model, "Model", "Body", "MODEL_VIEW")
    ids = {}
    for name, (storey, z) in rooms.items():
        parent = next(s for s in model.by_type("IfcBuildingStorey") if s.Name == storey)
        room = root.create_entity(model, ifc_class="IfcSpace", name=name)
        rep = geometry.add_wall_representation(model, context=body, length=4.0, height=2.5, thickness=3.0)
        geometry.assign_representation(model, product=room, representation=rep)
        placement = np.eye(4)
        placement[2, 3] = z
        geometry.edit_object_placement(model, product=room, matrix=placement)
        aggregate.assign_object(model, relating_object=parent, products=[room])
        ids[name] = room.GlobalId
    model.write(str(path))
    return ids


def test_rooms_are_elements_of_their_storey(tmp_path):
    path = tmp_path / "rooms.ifc"
    guid = ifc_with_rooms(path, {"Hall": ("Ground Floor", 0.0)})["Hall"]
    bim = ingest.read(path, placement=PLACE).bim
    hall = bim.element(guid)
    assert (hall["ifc_class"], hall["name"], hall["storey"], hall["storey_elevation"]) == (
        "IfcSpace", "Hall", "Ground Floor", 1.5)
    from cim.mesh import TriangleMesh

    mesh = TriangleMesh.from_multipolygon(hall.geometry)
    assert mesh.area() == pytest.approx(2 * (4 * 3) + 2 * (4 * 2.5) + 2 * (3 * 2.5), rel=1e-6)     # a closed box
    assert guid not in set(ingest.read(path, placement=PLACE, spaces=False).bim.elements["guid"])
