"""schemathesis against /openapi.json, in process (ASGI), with every check and every phase: 0 failures.

The run goes through schemathesis's own engine (what `schemathesis run` does), so coverage, fuzzing and stateful
phases all run; the examples per operation are bounded so that it stays well under two minutes. Process executions
are generated too: the scene's terrain is tiny and a job simulates at most a day, so each runs in under a second.
"""

from __future__ import annotations

import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, events, from_schema

from api import Settings, create_app
from cim import jobs as J
from tests.api.conftest import build

#: uploads (POST /uploads) are raw file bytes: send the generated ones as they are
schemathesis.serializer.alias(["application/x-netcdf", "application/netcdf", "image/tiff"],
                              "application/octet-stream")
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "429"]
LENIENT = {"positive_data_acceptance": {"expected-statuses": [*ACCEPTED, "400"]}}
#: Operations with a parameter whose valid values JSON Schema cannot state, so that a schema-valid request may
#: rightly get 400: CQL2 and OData filters (a grammar over the collection's property names), bbox and datetime
#: (ranges, calendar dates), property filters, and observations whose result must fit the Datastream's
#: observationType. Every other check stays on for them, and every check for all other operations.
#: The entity-set roots (/v1.1/Things, ...) take the same query options as the navigation collections
#: (/v1.1/Things({id})/Datastreams, ...), which get every phase; the roots' coverage phase alone took minutes
#: inside schemathesis, so they get the examples, fuzzing and stateful phases only.
OPERATIONS = [
    {"include-path": "/collections/{collectionId}/items", "include-method": "GET", "checks": LENIENT},
    {"include-path-regex": r"^/v1\.1/\w+$", "include-method": "GET", "checks": LENIENT,
     "phases": {"coverage": {"enabled": False}}},
    {"include-path-regex": r"^/v1\.1/\w+\(\{id\}\)/\w+s$", "include-method": "GET", "checks": LENIENT},
    {"include-method": "POST", "checks": LENIENT},
]


def _describe(ev) -> list[str]:
    out = []
    for case_id, checks in ev.recorder.checks.items():
        for check in checks:
            if check.status == Status.FAILURE:
                case = ev.recorder.cases[case_id].value
                info = check.failure_info
                out.append(f"{ev.recorder.label}: {check.name}: {case.method} {case.formatted_path} "
                           f"query={str(case.query)[:200]} body={str(case.body)[:200]} -> "
                           f"{info.failure.title if info else ''}: {info.failure.message[:200] if info else ''}")
    return out


def test_openapi_all_checks(tmp_path):
    twin = build(str(tmp_path / "scene.cim"), tmp_path)
    app = create_app(Settings(scene=twin.url, tiles_root=twin.tiles))
    config = SchemathesisConfig.from_dict({
        "headers": {"X-API-Key": twin.tokens["admin"]},
        "generation": {"max-examples": 8, "database": "none"},
        "checks": {"enabled": True},
        "seed": 7,
        "operations": OPERATIONS,
    })
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=config)
    failures, errors, scenarios, phases, labels = [], [], 0, set(), set()
    for ev in from_schema(schema).execute():
        if isinstance(ev, events.ScenarioFinished):
            scenarios += 1
            phases.add(ev.phase.name)
            labels.add(ev.recorder.label)
            failures += _describe(ev)
        elif isinstance(ev, events.NonFatalError | events.FatalError):
            errors.append(repr(getattr(ev, "value", None) or getattr(ev, "exception", None))[:500])
    with twin.scene.store.engine.connect() as conn:
        statuses = [j.status for j in J.list_jobs(conn)]
    twin.scene.close()
    assert {"GET /processes/{processId}", "POST /processes/{processId}/execution", "GET /jobs/{jobId}",
            "DELETE /jobs/{jobId}", "GET /jobs/{jobId}/results", "GET /jobs/{jobId}/results/{name}",
            "GET /jobs/{jobId}/results/max_depth/tiles/WebMercatorQuad/{z}/{y}/{x}", "POST /uploads",
            "GET /uploads/{uploadId}", "GET /viewer/viewer-config.json"} <= labels
    assert "successful" in statuses, statuses          # the examples of the execution body ran as real jobs
    assert scenarios >= 46 and {"COVERAGE", "FUZZING"} <= phases, (scenarios, phases)
    assert not errors, "\n".join(errors)
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(sorted(set(failures))[:60])
