"""Starting the server: load every run once, print the URL, serve with uvicorn until Ctrl-C.

Starlette (the ASGI toolkit FastAPI is built on) and uvicorn, its reference server: a light,
established stack with streaming multipart uploads (python-multipart), a thread pool for blocking
work and no template or ORM layer capcache would not use. They live in the ``serve`` extra, so
the core install stays as it is.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

from pipeline.errors import CapcacheError
from pipeline.serve.app import Limits


def run_names(run_dirs: list[Path]) -> list[str]:
    """Folder names, made unique (runs/a and other/a become "a" and "a-2")."""
    names: list[str] = []
    for run in run_dirs:
        name, n = run.resolve().name, 2
        while name in names:
            name, n = f"{run.resolve().name}-{n}", n + 1
        names.append(name)
    return names


def serve(run_dirs: list[Path], host: str = "127.0.0.1", port: int = 8000, device: str = "auto", beam: int = 3,
          n_best: int = 3, limits: Limits = Limits(), allow_urls: bool = False,
          announce: Callable[[str], None] = print) -> None:
    try:
        import uvicorn

        from pipeline.serve.app import create_app
        from pipeline.serve.served_run import ServedRun
    except ImportError as e:
        raise CapcacheError(f"capcache serve needs the serve extra ({e.name} is missing); "
                            "pip install 'capcache[serve]'") from None
    runs = [ServedRun(d, name, device, beam, n_best) for d, name in zip(run_dirs, run_names(run_dirs))]
    app = create_app(runs, limits, allow_urls)
    shown = "localhost" if host in ("127.0.0.1", "::1") else host
    announce(f"serving {', '.join(r.name for r in runs)} at http://{shown}:{port}/ (Ctrl-C stops)")
    sys.stdout.flush()  # a script or test reading the URL line through a pipe gets it now
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)
