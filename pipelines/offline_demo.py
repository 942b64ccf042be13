"""The most complete job that runs with no network: generate -> stats -> validate.

Starts the local stand-in of the Groq API (tests/fakes/llm_server.py, the one the tests use),
points the real groq client at it through GROQ_BASE_URL, and runs the real command line.
The texts it returns are placeholders; the pipeline around them is the real one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fakes.llm_server import API_KEY, FakeLLMServer  # noqa: E402


def main() -> int:
    server = FakeLLMServer(latency=0.05).start()
    env = os.environ | {"GROQ_API_KEY": API_KEY, "GROQ_BASE_URL": server.url}
    config = REPO / "pipelines" / "offline-demo.yaml"
    output = REPO / "data" / "offline-demo"
    try:
        for args in (["generate", "--config", str(config), "--output", str(output)],
                     ["stats", str(output)],
                     ["validate", str(output)]):
            print(f"$ gliznet-data {' '.join(args)}", flush=True)
            code = subprocess.call([sys.executable, "-m", "gliznet_data.cli", *args], env=env, cwd=REPO)
            if code:
                return code
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
