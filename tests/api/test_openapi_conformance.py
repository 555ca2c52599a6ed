"""The OpenAPI schema says what the API really answers: Schemathesis, with every check it
has, against a real controller that needs a token, finds no difference.

Its checks cover each status and media type an operation answers (documented or not), the
405 and its ``Allow`` header for methods a path lacks, and requests valid by the schema that
the API refuses. Examples are bounded (and the seed fixed) to keep the run near 30 s.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.controller.test_cluster import start_controller, stop

pytestmark = pytest.mark.integration

pytest.importorskip("schemathesis")

TOKEN = "conformance-s3cret"
SEED = 16

# A batch valid by the schema may still be refused with a 400: its spec's options belong
# to its job type, which checks them (and what they name on disk) when the batch is
# planned; no schema of the request can say that a scene file exists. Every other check,
# and every other operation, expects exactly what the schema says.
CONFIG = """
# Slow answers on a loaded machine are not failures; a stream never ends by itself, so each
# example of one waits for its timeout: a short one.
request-timeout = 20

[[operations]]
include-path-regex = "/(events|follow)$"
request-timeout = 0.5

[[operations]]
include-path-regex = "^/api/v1/batches$"
include-method = "POST"
# Schemathesis's own list (2XX, 3XX, 401, 403, 404, 409, 429, 5XX) and the 400.
checks.positive_data_acceptance.expected-statuses = [
    "2XX", "3XX", "400", "401", "403", "404", "409", "429", "5XX",
]

# A notification's target is a string to the schema; that it is mailto: with one address or
# an http(s) URL with a host is the domain's rule (qfarm.domain.notify), refused with a 400
# that names the target, which no pattern's message would.
[[operations]]
include-path-regex = "^/api/v1/settings/notify$"
include-method = "PUT"
checks.positive_data_acceptance.expected-statuses = [
    "2XX", "3XX", "400", "401", "403", "404", "409", "429", "5XX",
]

# The window and the step are each bounded in the schema; that together they make no more
# buckets than a chart draws (window / step <= 1440) is a rule between two parameters,
# which no schema of either can say: a 400 that names the count.
[[operations]]
include-path-regex = "^/api/v1/stats$"
include-method = "GET"
checks.positive_data_acceptance.expected-statuses = [
    "2XX", "3XX", "400", "401", "403", "404", "409", "429", "5XX",
]
"""


@pytest.fixture(scope="module")
def controller(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("conformance")
    proc, url = start_controller(root, "--token", TOKEN)
    try:
        yield url, root
    finally:
        stop(proc)


def test_the_api_answers_as_its_openapi_schema_says(controller: tuple[str, Path]) -> None:
    url, root = controller
    config = root / "schemathesis.toml"
    config.write_text(CONFIG, encoding="utf-8")
    # The CLI, as a person would run it: it runs every phase (coverage, fuzzing, stateful).
    command = [
        sys.executable, "-c", "from schemathesis.cli import schemathesis; schemathesis()",
        "--config-file", str(config), "--no-color",
        "run", f"{url}/openapi.json", "--checks", "all",
        "--header", f"Authorization: Bearer {TOKEN}",
        "--max-examples", "5", "--seed", str(SEED), "--workers", "1",
        "--generation-database", "none",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=root)
    report = done.stdout + done.stderr
    generated = re.search(r"(\d+) generated", report)
    assert generated is not None, report[-3000:]
    assert done.returncode == 0, report[-6000:]
    assert int(generated.group(1)) > 300, report[-3000:]
