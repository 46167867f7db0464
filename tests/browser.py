"""A headless Chromium driven over the DevTools protocol (aiohttp's WebSocket client), with a
fake microphone that plays a wav: what the page test needs, with no driver binary."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
from typing import Any, Optional

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> Optional[str]:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class Browser:
    """``async with Browser(wav) as b: await b.open(url); await b.evaluate("...")``."""

    def __init__(
        self, fake_microphone_wav: str, executable: Optional[str] = None, trusted_spki: Optional[str] = None
    ) -> None:
        """``trusted_spki``: the base64 SHA-256 of a certificate's public key, trusted as if a
        certificate authority had signed it (a test's self-signed certificate)."""
        self.wav, self.executable = fake_microphone_wav, executable or find_chromium()
        self.trusted_spki = trusted_spki
        if self.executable is None:
            raise RuntimeError("no chromium found")
        self._id = 0

    async def __aenter__(self) -> "Browser":
        import aiohttp

        self.profile = tempfile.mkdtemp(prefix="echostream-chromium-")
        self.process = subprocess.Popen(
            [
                self.executable,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--remote-debugging-port=0",
                f"--user-data-dir={self.profile}",
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={self.wav}",
                "--autoplay-policy=no-user-gesture-required",
                "--window-size=1200,800",
            ]
            + ([f"--ignore-certificate-errors-spki-list={self.trusted_spki}"] if self.trusted_spki else [])
            + ["about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        endpoint = await asyncio.get_running_loop().run_in_executor(None, self._devtools_endpoint)
        port = re.search(r":(\d+)/", endpoint).group(1)
        self.session = aiohttp.ClientSession()
        async with self.session.get(f"http://127.0.0.1:{port}/json") as r:
            targets = await r.json(content_type=None)
        page = next(t for t in targets if t.get("type") == "page")
        self.ws = await self.session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
        await self.call("Page.enable")
        await self.call("Runtime.enable")
        return self

    def _devtools_endpoint(self) -> str:
        for line in self.process.stderr:
            match = re.search(r"DevTools listening on (ws://\S+)", line)
            if match:
                return match.group(1)
        raise RuntimeError("chromium exited before opening its DevTools endpoint")

    async def __aexit__(self, *exc) -> None:
        await self.ws.close()
        await self.session.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.profile, ignore_errors=True)

    async def call(self, method: str, **params) -> Any:
        self._id += 1
        my_id = self._id
        await self.ws.send_json({"id": my_id, "method": method, "params": params})
        while True:
            message = json.loads((await self.ws.receive(timeout=60)).data)
            if message.get("id") == my_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    async def open(self, url: str) -> None:
        await self.call("Page.navigate", url=url)
        await self.wait_for("document.readyState === 'complete'", timeout=30)

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float) -> Any:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            value = await self.evaluate(expression)
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"not true within {timeout} s: {expression}")
            await asyncio.sleep(0.25)

    async def screenshot(self, path: str) -> None:
        data = (await self.call("Page.captureScreenshot", format="png"))["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))


def browser_available() -> Optional[str]:
    """Why the browser test cannot run here, or None."""
    if find_chromium() is None:
        return "chromium is not installed (apt-get install chromium; .ci/run installs it)"
    return None


if os.environ.get("ECHOSTREAM_CHROMIUM"):
    CHROMIUM_NAMES = (os.environ["ECHOSTREAM_CHROMIUM"],) + CHROMIUM_NAMES
