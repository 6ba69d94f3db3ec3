"""The local server over HTTP, as users reach it: started as `make run` starts it, called with
urllib (as curl calls it, with no Content-Type), and the `model-registry` command."""

import base64
import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
API_KEY = "local-test-key"


def local_api_for(env: dict[str, str], *args: str) -> Iterator[str]:
    process, url = start_local_api(env, *args)
    yield url
    process.terminate()
    process.wait(timeout=10)


def start_local_api(
    env: dict[str, str], *args: str, printed: list[str] | None = None
) -> tuple[subprocess.Popen[str], str]:
    """The server and its URL; what it prints after its banner goes to `printed`, if given."""
    process = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "scripts" / "local_api.py"), "--port", "0", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    first_line = process.stdout.readline()
    assert first_line.startswith("Serving on http://127.0.0.1:"), first_line
    # The server logs a JSON line a request: keep reading, or a full pipe would block it.
    stdout = process.stdout

    def drain() -> None:
        for line in stdout:
            if printed is not None:
                printed.append(line)

    threading.Thread(target=drain, daemon=True).start()
    return process, first_line.split()[2]


def request(
    url: str, method: str = "POST", body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode() if body else None
    # No Content-Type given: urllib then sends a form type, as `curl -d` does.
    call = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(call, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def register(url: str, artifact: bytes, name: str = "moons") -> tuple[int, Any]:
    return request(
        f"{url}/models", body={"name": name, "artifact": base64.b64encode(artifact).decode()}
    )


def cli(url: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`model-registry --url URL --api-key API_KEY ARGS...` in a process of its own."""
    command = [
        sys.executable,
        "-m",
        "registry.client.cli",
        "--url",
        url,
        "--api-key",
        API_KEY,
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, check=check, timeout=120)


def cli_json(url: str, *args: str) -> Any:
    return json.loads(cli(url, *args, "--json").stdout)
