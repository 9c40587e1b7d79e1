"""Published weights on a machine that may be offline: the local copy, a download, or a one-line error at once.

Left alone, torch.hub and huggingface_hub discover that a host is unreachable only after DNS and
TCP timeouts and retries (tens of seconds to minutes per file) and then fail with a traceback; on
an offline cluster node that looks like a hang. So a published checkpoint is first looked up in
the library's own cache; if absent, the download host is probed for half a second (in a thread,
because DNS lookups ignore socket timeouts) and, when it does not answer, the error names the
weights, where the file is expected and how to get it there. Reachable hosts are left to the
library's normal download path, so a file fetched here is where the library expects it next time.
"""

from __future__ import annotations

import os
import socket
import threading
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import torch
from torchvision.models import WeightsEnum

from pipeline.errors import CapcacheError

OFFLINE_ENV = "CAPCACHE_OFFLINE"  # =1: never try to download, fail at once when a file is not cached
PROBE_TIMEOUT_S = 0.5
TRUTHY = ("1", "true", "yes", "on")


def torchvision_state_dict(weights: WeightsEnum) -> dict:
    """The state dict of a torchvision weights enum member, from torch hub's checkpoint cache or downloaded into it."""
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name
    what = f"torchvision weights {weights!r}"
    if not path.is_file():
        require_reachable(weights.url, what, path, f"run once on a machine with internet and copy {path.name} "
                          f"to {path.parent}, or pass --weights /path/to/{path.name}")
    try:
        return weights.get_state_dict(progress=True, check_hash=True)
    except Exception as e:  # interrupted download, corrupt cached file
        raise CapcacheError(f"cannot load {what} ({path}): {first_line(e)}; delete the file and retry") from e


def open_clip_checkpoint(model: str, tag: str, cfg: dict, file_fits: bool) -> str:
    """Local path of open_clip's checkpoint for ``model``/``tag`` (``cfg``: its pretrained config).

    Every open_clip tag has a Hugging Face hub copy, which open_clip prefers (its safetensors twin
    first). ``file_fits``: whether that file would also work as ``--weights PATH`` (it does for the
    encoder's default tag, whose architecture settings a local file is built with), so the error
    can offer that way round.
    """
    from huggingface_hub import constants, try_to_load_from_cache
    from open_clip import download_pretrained

    what = f"open_clip weights {model}:{tag}"
    if not cfg.get("hf_hub"):
        raise CapcacheError(f"{what} has no Hugging Face hub copy in this open_clip version; pass --weights /path/to/file")
    repo, filename = os.path.split(cfg["hf_hub"])  # "org/name/" means open_clip's default file name
    filename = filename or "open_clip_pytorch_model.bin"
    cache = hf_hub_cache()
    for name in (safetensors_name(filename), filename):  # open_clip's own order of preference
        cached = try_to_load_from_cache(repo, name, cache_dir=cache)
        if isinstance(cached, str):
            return cached
    folder = Path(cache) / f"models--{repo.replace('/', '--')}"
    url = f"{constants.ENDPOINT}/{repo}/resolve/main/{filename}"
    require_reachable(url, what, folder, hf_remedy(url, folder, file_fits), offline_envs=(OFFLINE_ENV, "HF_HUB_OFFLINE"))
    try:
        return download_pretrained(cfg, cache_dir=cache)
    except Exception as e:
        raise CapcacheError(f"cannot download {what}: {first_line(e)}") from e


def hf_remedy(url: str, folder: Path, file_fits: bool) -> str:
    copy = f"run once on a machine with internet and copy its {folder.name} folder into {folder.parent}"
    return f"{copy}, or download {url} and pass --weights /path/to/{Path(url).name}" if file_fits else copy


def safetensors_name(filename: str) -> str:
    """open_clip looks for a safetensors twin first: open_clip_pytorch_model.bin -> open_clip_model.safetensors."""
    if filename == "open_clip_pytorch_model.bin":
        return "open_clip_model.safetensors"
    return filename.rsplit(".", 1)[0] + ".safetensors"


def hf_hub_cache() -> str:
    """huggingface_hub's cache folder, read from the environment now rather than when it was imported."""
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return os.path.expanduser(os.environ.get("HF_HUB_CACHE") or os.path.join(home, "hub"))


def require_reachable(url: str, what: str, expected: Path, remedy: str,
                      offline_envs: tuple[str, ...] = (OFFLINE_ENV,), smoke_test: str = "--weights random") -> None:
    """Return if the host serving ``url`` answers; otherwise raise the one-line offline error.

    Any of ``offline_envs`` set (HF_HUB_OFFLINE for the Hugging Face hub) means offline without probing.
    """
    for name in offline_envs:
        if env_flag(name):
            raise offline_error(what, expected, f"{name}=1 is set", remedy, smoke_test)
    host, port = probe_target(url)
    if not reachable(host, port):
        raise offline_error(what, expected, f"{host}:{port} cannot be reached", remedy, smoke_test)


def offline_error(what: str, expected: Path, why: str, remedy: str, smoke_test: str = "--weights random") -> CapcacheError:
    return CapcacheError(f"{what} not found locally (expected in {expected}) and {why}: {remedy}; "
                         f"or use {smoke_test} for a smoke test")


def probe_target(url: str) -> tuple[str, int]:
    """(host, port) a download of ``url`` would connect to: the HTTPS proxy when one is configured."""
    parsed = urlparse(url)
    proxy = urllib.request.getproxies().get(parsed.scheme)
    if proxy and not urllib.request.proxy_bypass(parsed.hostname or ""):
        parsed = urlparse(proxy if "://" in proxy else f"http://{proxy}")
    default_port = 443 if parsed.scheme == "https" else 80
    return parsed.hostname or "", parsed.port or default_port


def reachable(host: str, port: int, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to host:port opens within ``timeout`` seconds, DNS lookup included."""
    answered = threading.Event()

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            answered.set()
        except OSError:
            pass

    threading.Thread(target=probe, daemon=True).start()  # a DNS lookup that hangs is left behind, not waited for
    return answered.wait(timeout)


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in TRUTHY


def first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]
