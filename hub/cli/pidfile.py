"""The running hub's pid file, so ``hub reload`` can find it and send SIGHUP."""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

from hub.config import HubConfig
from hub.errors import HubError


def default_pid_file(config: HubConfig) -> Path:
    """One file per hub identity: ``$TMPDIR/feedhub-<client id>.pid``."""
    return Path(tempfile.gettempdir()) / f"feedhub-{config.broker.client_id}.pid"


@contextlib.contextmanager
def pid_file(path: Path) -> Iterator[Path]:
    """Write this process's pid to ``path`` for as long as the block runs."""
    path.write_text(f"{os.getpid()}\n")
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            if path.read_text().strip() == str(os.getpid()):
                path.unlink()


def signal_hub(path: Path, signum: int = signal.SIGHUP) -> int:
    """Send ``signum`` to the hub whose pid is in ``path``; return the pid."""
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError) as exc:
        raise HubError(f"no running hub found: cannot read pid file {path} ({exc}); "
                       "start it with `hub run` or give --pid-file") from exc
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        raise HubError(f"no hub is running as pid {pid} (stale pid file {path})") from None
    return pid
