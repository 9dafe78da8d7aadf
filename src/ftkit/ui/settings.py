"""What one `ftkit ui` server knows: the registry it serves, its own folder, the address and the write token."""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass, field
from pathlib import Path

MAX_UPLOAD_BYTES = 200 * 2**20  # a training file larger than this is given as a path on this machine instead


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and `localhost`: addresses only this machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def ui_home(registry_root: Path) -> Path:
    """The UI's own folder inside the registry's git folder (never tracked): uploads, job logs, server.json."""
    git_dir = registry_root / ".git"
    return (git_dir if git_dir.is_dir() else registry_root) / "ftkit-ui"


@dataclass
class UiSettings:
    """One server's settings. `token` authorizes write requests (the page carries it; another site cannot read
    it); `port` is the bound port (known once the socket is bound)."""

    registry: Path
    host: str = "127.0.0.1"
    port: int = 0
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    max_upload_bytes: int = MAX_UPLOAD_BYTES

    @property
    def home(self) -> Path:
        """The UI's folder (created on first use)."""
        return ui_home(self.registry)

    @property
    def url(self) -> str:
        """The base URL a browser on this machine opens."""
        shown = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{shown if ':' not in shown else f'[{shown}]'}:{self.port}"

    def allowed_hosts(self) -> set[str] | None:
        """Host header values accepted (DNS-rebinding defence), or None when bound to a non-loopback address: then
        any name that reaches the server is accepted and writes rely on the token alone."""
        if not is_loopback(self.host):
            return None
        return {f"{name}:{self.port}" for name in ("127.0.0.1", "localhost", "[::1]", self.host)}
