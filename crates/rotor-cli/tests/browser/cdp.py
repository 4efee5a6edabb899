"""A small Chrome DevTools Protocol client for the console's browser test.

Starts headless Chromium with --remote-debugging-pipe (CDP as NUL-terminated JSON on file
descriptors 3 and 4: no websocket, no port), runs the steps it reads as JSON on stdin, and
prints a JSON object {key: outerHTML} of every `html` step on stdout. Steps:

  {"op": "goto", "url": URL}                 navigate and wait for the load event
  {"op": "fill", "selector": CSS, "value": V} set an input's value
  {"op": "click", "selector": CSS}            click (a submit button: waits for the next page)
  {"op": "html", "key": K}                    record the page's DOM (and its URL as K.url)
  {"op": "shot", "path": P}                   save a PNG screenshot of the whole page
  {"op": "eval", "js": JS}                    run JS in the page (no navigation)
  {"op": "wait_for", "js": JS}                poll until JS is true (without reloading)

Steps come on stdin because they carry API tokens, which never go in argv. Any failure
(Chromium missing, a selector that matches nothing, a page that never loads) exits non-zero
with the reason on stderr.
"""

import base64
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time

TIMEOUT = 20.0


class Browser:
    def __init__(self, chromium: str, profile: str):
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()

        def wire():
            # Copies first: a pipe end may itself be 3 or 4, and dup2 onto itself would
            # keep its close-on-exec flag. dup2 makes 3 and 4 inheritable.
            r, w = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(r, 3)
            os.dup2(w, 4)

        self.proc = subprocess.Popen(
            [
                chromium, "--headless", "--no-sandbox", "--disable-gpu",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run", "--no-default-browser-check",
                "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1200,900",
                f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank",
            ],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            close_fds=False, preexec_fn=wire,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.buf = b""
        self.next_id = 0
        self.events = []
        self.session = None
        targets = self.call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.call(
            "Target.attachToTarget", {"targetId": page["targetId"], "flatten": True}, session=False
        )["sessionId"]
        self.call("Page.enable")
        self.call("Runtime.enable")

    def _read(self, deadline: float) -> dict:
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("Chromium did not answer in time")
            ready, _, _ = select.select([self.from_chrome], [], [], left)
            if ready:
                chunk = os.read(self.from_chrome, 1 << 20)
                if not chunk:
                    raise RuntimeError("Chromium closed the DevTools pipe (did it crash?)")
                self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method: str, params=None, session=True) -> dict:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self.to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT
        while True:
            m = self._read(deadline)
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            if "method" in m:
                self.events.append(m)

    def wait_event(self, method: str):
        deadline = time.monotonic() + TIMEOUT
        while True:
            for i, e in enumerate(self.events):
                if e["method"] == method:
                    del self.events[: i + 1]
                    return e
            self.events.append(self._read(deadline))

    def eval(self, expr: str):
        r = self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True})
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expr}: {r['exceptionDetails'].get('text')}")
        return r["result"].get("value")

    def goto(self, url: str):
        self.events.clear()
        r = self.call("Page.navigate", {"url": url})
        if r.get("errorText"):
            raise RuntimeError(f"{url}: {r['errorText']}")
        self.wait_event("Page.loadEventFired")

    def element(self, selector: str) -> str:
        sel = json.dumps(selector)
        if not self.eval(f"document.querySelector({sel}) !== null"):
            raise RuntimeError(f"no element matches {selector} on {self.eval('location.href')}")
        return f"document.querySelector({sel})"

    def screenshot(self, path: str):
        size = self.call("Page.getLayoutMetrics")["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": min(size["width"], 1200),
                "height": min(size["height"], 1500), "scale": 1}
        shot = self.call("Page.captureScreenshot",
                         {"format": "png", "clip": clip, "captureBeyondViewport": True})
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(base64.b64decode(shot["data"]))

    def close(self):
        try:
            self.call("Browser.close", session=False)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def main() -> int:
    chromium = os.environ.get("ROTOR_CHROMIUM") or shutil.which("chromium")
    if not chromium:
        print("chromium not found: run scripts/install-deps", file=sys.stderr)
        return 2
    steps = json.load(sys.stdin)
    out = {}
    with tempfile.TemporaryDirectory(prefix="rotor-chromium-") as profile:
        b = Browser(chromium, profile)
        try:
            for n, s in enumerate(steps):
                op = s["op"]
                print(f"cdp: step {n}: {op} {s.get('url') or s.get('selector') or s.get('key') or ''}",
                      file=sys.stderr)
                if op == "goto":
                    b.goto(s["url"])
                elif op == "fill":
                    el = b.element(s["selector"])
                    b.eval(f"{el}.value = {json.dumps(s['value'])}")
                elif op == "click":
                    el = b.element(s["selector"])
                    b.events.clear()
                    b.eval(f"{el}.click()")
                    b.wait_event("Page.loadEventFired")
                elif op == "html":
                    out[s["key"]] = b.eval("document.documentElement.outerHTML")
                    out[s["key"] + ".url"] = b.eval("location.href")
                elif op == "shot":
                    b.screenshot(s["path"])
                elif op == "eval":
                    b.eval(s["js"])
                elif op == "wait_for":
                    deadline = time.monotonic() + TIMEOUT
                    while not b.eval(s["js"]):
                        if time.monotonic() > deadline:
                            raise TimeoutError(f"never true: {s['js']}")
                        time.sleep(0.1)
                else:
                    raise ValueError(f"unknown step {op}")
        finally:
            b.close()
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
