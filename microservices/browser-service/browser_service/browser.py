"""One headless Chromium driven through Selenium. Everything here blocks: the
session manager calls it from worker threads, one call at a time per browser."""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.common.exceptions import (
    ElementClickInterceptedException,
    ElementNotInteractableException,
    InvalidArgumentException,
    InvalidSelectorException,
    JavascriptException,
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
    UnexpectedTagNameException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-default-apps",
    "--disable-breakpad",
    "--disable-crash-reporter",
    "--disable-client-side-phishing-detection",
    "--disable-domain-reliability",
    "--no-pings",
    "--disable-features=Translate,MediaRouter,OptimizationHints,DnsOverHttps,InterestFeedContentSuggestions,"
    "NetworkTimeServiceQuerying,AutofillServerCommunication,OptimizationGuideModelDownloading,"
    "CertificateTransparencyComponentUpdater",
    "--password-store=basic",
    "--mute-audio",
    "--hide-scrollbars",
    # WebRTC may not send UDP around the proxy (a page could otherwise probe internal hosts).
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
    "--webrtc-ip-handling-policy=disable_non_proxied_udp",
)

KEYS = {
    "enter": Keys.ENTER,
    "return": Keys.RETURN,
    "tab": Keys.TAB,
    "escape": Keys.ESCAPE,
    "esc": Keys.ESCAPE,
    "backspace": Keys.BACKSPACE,
    "delete": Keys.DELETE,
    "space": Keys.SPACE,
    "arrowup": Keys.ARROW_UP,
    "arrowdown": Keys.ARROW_DOWN,
    "arrowleft": Keys.ARROW_LEFT,
    "arrowright": Keys.ARROW_RIGHT,
    "up": Keys.ARROW_UP,
    "down": Keys.ARROW_DOWN,
    "left": Keys.ARROW_LEFT,
    "right": Keys.ARROW_RIGHT,
    "pageup": Keys.PAGE_UP,
    "pagedown": Keys.PAGE_DOWN,
    "home": Keys.HOME,
    "end": Keys.END,
}

MAX_FULL_PAGE_HEIGHT = 16384

# Fixed, internal scripts (no user JavaScript runs unless BROWSER_ALLOW_EVAL is set).
_JS_LINKS = """
const root = arguments[0] || document;
return Array.from(root.querySelectorAll('a[href]')).slice(0, arguments[1]).map(a => ({
  text: (a.innerText || a.textContent || '').trim().slice(0, 300), href: a.href}));
"""
_JS_TABLE = """
const t = arguments[0];
const rows = Array.from(t.rows || []).map(r => Array.from(r.cells).map(c => (c.innerText || '').trim()));
let headers = [];
if (t.tHead && t.tHead.rows.length) { headers = rows.shift(); }
else if (rows.length && Array.from(t.rows[0].cells).every(c => c.tagName === 'TH')) { headers = rows.shift(); }
return {headers: headers, rows: rows};
"""
# Whether clicking the element leads to another page in this tab: a link (not to an anchor of
# this page, not to another tab) or a form's submit control.
_JS_CLICK_NAVIGATES = """
const e = arguments[0];
const a = e.closest('a[href]');
if (a) {
  const href = a.getAttribute('href');
  return !href.startsWith('#') && !href.startsWith('javascript:') && (!a.target || a.target === '_self');
}
const b = e.closest('button, input');
return !!(b && b.form && (b.type === 'submit' || b.type === 'image'));
"""
# How long a click that should navigate may take to leave the page (a slow form POST).
CLICK_NAVIGATION_S = 5.0
_JS_NAV_STATUS = """
const e = performance.getEntriesByType('navigation')[0];
return e && e.responseStatus ? e.responseStatus : null;
"""


class ActionError(Exception):
    """A user-caused failure: the element isn't there, isn't interactable… (4xx)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class BrowserGone(Exception):
    """The browser process died or stopped answering."""


@dataclass
class LaunchConfig:
    chromium_path: str
    chromedriver_path: str
    profile_dir: Path
    proxy_port: int
    window_size: str
    page_load_timeout_s: int
    command_timeout_s: float


def _by(selector: str, by: str | None) -> tuple[str, str]:
    kind = (by or "").lower()
    if not kind:
        if selector.startswith("xpath="):
            return By.XPATH, selector[len("xpath=") :]
        kind = "xpath" if selector.startswith(("/", "(")) else "css"
    if kind == "xpath":
        return By.XPATH, selector
    if kind == "css":
        return By.CSS_SELECTOR, selector
    raise ActionError(400, f"unknown selector type {by!r}: use 'css' or 'xpath'")


def _describe(selector: str, by: str | None) -> str:
    kind, value = _by(selector, by)
    return f"{'XPath' if kind == By.XPATH else 'CSS selector'} {value!r}"


def find_browser_pid(profile_dir: Path) -> int | None:
    """The main Chromium process of this profile (the one without --type=)."""
    needle = f"--user-data-dir={profile_dir}".encode()
    for pid in pids_with(needle):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"--type=" not in cmd:
            return pid
    return None


def pids_with(needle: bytes) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmd = Path(entry.path, "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmd:
            found.append(int(entry.name))
    return found


def pid_alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # state is the field after the ")" closing the command name; Z = zombie (dead, not reaped).
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


class Browser:
    def __init__(self, config: LaunchConfig) -> None:
        self.config = config
        self.driver: webdriver.Chrome | None = None
        self.browser_pid: int | None = None
        self.driver_pid: int | None = None
        self.tmp_dir: Path | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        cfg = self.config
        home = cfg.profile_dir / "home"
        home.mkdir(parents=True, exist_ok=True)
        # Chromium's singleton socket lives in TMPDIR and must fit a unix socket path (108 bytes).
        self.tmp_dir = Path(tempfile.mkdtemp(prefix="harvis-browser-"))
        opts = webdriver.ChromeOptions()
        opts.binary_location = cfg.chromium_path
        for flag in CHROMIUM_FLAGS:
            opts.add_argument(flag)
        opts.add_argument(f"--user-data-dir={cfg.profile_dir / 'chromium'}")
        opts.add_argument(f"--window-size={cfg.window_size}")
        opts.add_argument(f"--proxy-server=http://127.0.0.1:{cfg.proxy_port}")
        opts.add_argument("--proxy-bypass-list=<-loopback>")
        # Chromium itself resolves nothing: every name goes to the proxy, which vets it.
        opts.add_argument("--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1")
        opts.page_load_strategy = "eager"
        opts.unhandled_prompt_behavior = "dismiss"
        # chromedriver turns the popup blocker off by default: keep it on.
        opts.add_experimental_option("excludeSwitches", ["disable-popup-blocking"])
        opts.add_experimental_option(
            "prefs",
            {
                "download_restrictions": 3,  # block all downloads
                "net.network_prediction_options": 2,  # no preconnects/prefetches
                "download.prompt_for_download": False,
                "download.default_directory": str(cfg.profile_dir / "no-downloads"),
                "webrtc.ip_handling_policy": "disable_non_proxied_udp",
                "webrtc.multiple_routes_enabled": False,
                "webrtc.nonproxied_udp_enabled": False,
                "profile.default_content_setting_values.notifications": 2,
                "profile.default_content_setting_values.geolocation": 2,
                "profile.default_content_setting_values.media_stream": 2,
                "credentials_enable_service": False,
                "profile.password_manager_enabled": False,
            },
        )
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "TMPDIR": str(self.tmp_dir),
            "LANG": "C.UTF-8",
        }
        service = Service(executable_path=cfg.chromedriver_path, env=env, log_output=os.devnull)
        driver = webdriver.Chrome(options=opts, service=service)
        self.driver = driver
        self.driver_pid = driver.service.process.pid if driver.service.process else None
        with contextlib.suppress(Exception):
            driver.command_executor.client_config.timeout = cfg.command_timeout_s
        driver.set_page_load_timeout(cfg.page_load_timeout_s)
        driver.set_script_timeout(10)
        with contextlib.suppress(WebDriverException):
            driver.execute_cdp_cmd("Page.setDownloadBehavior", {"behavior": "deny"})
        self.browser_pid = find_browser_pid(cfg.profile_dir / "chromium")

    def alive(self) -> bool:
        return self.driver is not None and pid_alive(self.browser_pid) and pid_alive(self.driver_pid)

    def kill_nowait(self) -> None:
        self.kill(wait=False)

    def kill(self, wait: bool = True) -> None:
        """Hard stop: kill the browser (and anything else of this profile) and the driver."""
        for pid in {*(pids_with(str(self.config.profile_dir).encode())), self.browser_pid, self.driver_pid}:
            if pid:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
        if wait and self.driver is not None:
            proc = getattr(self.driver.service, "process", None)
            if proc is not None:
                with contextlib.suppress(Exception):
                    proc.wait(5)

    def close(self) -> None:
        """Polite quit when the browser still runs, then make sure; the profile is wiped."""
        try:
            if self.driver is not None and self.alive():
                with contextlib.suppress(Exception):
                    self.driver.command_executor.client_config.timeout = 5
                with contextlib.suppress(Exception):
                    self.driver.quit()
        finally:
            self.kill()
            self.driver = None
            shutil.rmtree(self.config.profile_dir, ignore_errors=True)
            if self.tmp_dir is not None:
                shutil.rmtree(self.tmp_dir, ignore_errors=True)

    # ------------------------------------------------------------ helpers

    @property
    def d(self) -> webdriver.Chrome:
        if self.driver is None:
            raise BrowserGone("the browser is not running")
        return self.driver

    def state(self) -> dict[str, Any]:
        d = self.d
        return {"url": d.current_url, "title": d.title}

    def nav_status(self) -> int | None:
        with contextlib.suppress(WebDriverException):
            value = self.d.execute_script(_JS_NAV_STATUS)
            return int(value) if value else None
        return None

    def _wait_ready(self, wait_until: str, timeout: float) -> None:
        if wait_until == "load":
            WebDriverWait(self.d, timeout, poll_frequency=0.05).until(
                lambda d: d.execute_script("return document.readyState") == "complete"
            )

    def find(self, selector: str, by: str | None, timeout: float, condition: str = "present") -> WebElement:
        kind, value = _by(selector, by)
        cond = {
            "present": ec.presence_of_element_located,
            "visible": ec.visibility_of_element_located,
            "clickable": ec.element_to_be_clickable,
        }[condition]
        try:
            return WebDriverWait(self.d, timeout, poll_frequency=0.1).until(cond((kind, value)))
        except InvalidSelectorException as exc:
            raise ActionError(400, f"invalid {_describe(selector, by)}") from exc
        except TimeoutException as exc:
            present = self.d.find_elements(kind, value)
            what = _describe(selector, by)
            if present and condition != "present":
                raise ActionError(
                    409, f"the element matching {what} exists but is not {condition} (waited {timeout:g} s)"
                ) from exc
            raise ActionError(404, f"no element matches {what} (waited {timeout:g} s)") from exc

    # ------------------------------------------------------------ actions

    def navigate(self, url: str, wait_until: str, timeout: float) -> None:
        try:
            self.d.get(url)
        except TimeoutException as exc:
            raise ActionError(504, f"the page did not load within {self.config.page_load_timeout_s} s") from exc
        # DOMContentLoaded came; a late "load" only means slow subresources: report what is there.
        with contextlib.suppress(TimeoutException):
            self._wait_ready(wait_until, timeout)

    def back(self) -> None:
        self.d.back()

    def forward(self) -> None:
        self.d.forward()

    def click(self, selector: str, by: str | None, timeout: float) -> dict[str, Any]:
        el = self.find(selector, by, timeout, "clickable")
        before = set(self.d.window_handles)
        navigates = bool(self.d.execute_script(_JS_CLICK_NAVIGATES, el))
        page = self.d.find_element(By.TAG_NAME, "html") if navigates else None
        try:
            el.click()
        except ElementClickInterceptedException as exc:
            raise ActionError(
                409, f"the element matching {_describe(selector, by)} is covered by another element"
            ) from exc
        except (ElementNotInteractableException, StaleElementReferenceException) as exc:
            raise ActionError(409, f"the element matching {_describe(selector, by)} is not interactable") from exc
        new = [h for h in self.d.window_handles if h not in before]
        if new:  # a link opened a new tab: follow it
            self.d.switch_to.window(new[-1])
        elif page is not None:
            self._follow_navigation(page, timeout)
        return {"new_tab": bool(new)}

    def _follow_navigation(self, page: WebElement, timeout: float) -> None:
        """After a click on a link or a submit button, answer with the page it led to: wait
        until the old page is gone (a script may still cancel the navigation: then it stays),
        then until the new one has loaded."""
        try:
            WebDriverWait(self.d, min(timeout, CLICK_NAVIGATION_S), poll_frequency=0.05).until(ec.staleness_of(page))
        except TimeoutException:
            return
        with contextlib.suppress(TimeoutException):
            self._wait_ready("load", timeout)

    def type(self, selector: str, by: str | None, text: str, clear: bool, timeout: float) -> None:
        el = self.find(selector, by, timeout, "visible")
        try:
            if clear:
                el.clear()
            el.send_keys(text)
        except (ElementNotInteractableException, InvalidArgumentException) as exc:
            raise ActionError(409, f"cannot type into the element matching {_describe(selector, by)}") from exc

    def press(self, key: str, selector: str | None, by: str | None, timeout: float) -> None:
        seq = KEYS.get(key.lower().replace(" ", "").replace("_", ""))
        if seq is None:
            if len(key) != 1:
                raise ActionError(400, f"unknown key {key!r}; known: {', '.join(sorted(KEYS))} or one character")
            seq = key
        el = self.find(selector, by, timeout, "present") if selector else self.d.switch_to.active_element
        try:
            el.send_keys(seq)
        except ElementNotInteractableException as exc:
            raise ActionError(409, "the focused element does not take keys") from exc

    def scroll(self, selector: str | None, by: str | None, x: int, y: int, to: str | None, timeout: float) -> dict:
        d = self.d
        if selector:
            el = self.find(selector, by, timeout, "present")
            d.execute_script("arguments[0].scrollIntoView({block: 'center'});", el)
        elif to == "top":
            d.execute_script("window.scrollTo(0, 0);")
        elif to == "bottom":
            d.execute_script("window.scrollTo(0, document.documentElement.scrollHeight);")
        else:
            d.execute_script("window.scrollBy(arguments[0], arguments[1]);", x, y)
        pos = d.execute_script("return [window.scrollX, window.scrollY];")
        return {"scroll_x": pos[0], "scroll_y": pos[1]}

    def select(
        self, selector: str, by: str | None, value: str | None, label: str | None, index: int | None, timeout: float
    ) -> dict:
        el = self.find(selector, by, timeout, "present")
        try:
            sel = Select(el)
        except UnexpectedTagNameException as exc:
            raise ActionError(400, f"the element matching {_describe(selector, by)} is not a <select>") from exc
        try:
            if value is not None:
                sel.select_by_value(value)
            elif label is not None:
                sel.select_by_visible_text(label)
            elif index is not None:
                sel.select_by_index(index)
            else:
                raise ActionError(400, "select needs `value`, `label` (visible text) or `index`")
        except NoSuchElementException as exc:
            options = [o.get_attribute("value") for o in sel.options][:50]
            raise ActionError(
                404, f"no such option (tried value={value!r} label={label!r} index={index!r}); options: {options}"
            ) from exc
        except ElementNotInteractableException as exc:
            raise ActionError(409, "the <select> is disabled or hidden") from exc
        chosen = sel.first_selected_option
        return {"value": chosen.get_attribute("value"), "label": chosen.text}

    def wait(self, selector: str | None, by: str | None, text: str | None, visible: bool, timeout: float) -> dict:
        if selector:
            self.find(selector, by, timeout, "visible" if visible else "present")
            return {"found": "selector"}
        if text:
            try:
                WebDriverWait(self.d, timeout, poll_frequency=0.1).until(
                    lambda d: text in (d.execute_script("return document.body ? document.body.innerText : ''") or "")
                )
            except TimeoutException as exc:
                raise ActionError(404, f"the text {text!r} did not appear (waited {timeout:g} s)") from exc
            return {"found": "text"}
        time.sleep(timeout)
        return {"waited_s": timeout}

    def extract(self, what: str, selector: str | None, by: str | None, limit: int, timeout: float) -> Any:
        d = self.d
        root = self.find(selector, by, timeout, "present") if selector else None
        if what == "text":
            text = (
                root.text
                if root is not None
                else d.execute_script("return document.body ? document.body.innerText : ''")
            )
            text = text or ""
            return {"text": text[:limit], "truncated": len(text) > limit}
        if what == "links":
            return {"links": d.execute_script(_JS_LINKS, root, 2000)}
        if what == "table":
            table = root if root is not None else self.find("table", "css", timeout, "present")
            if table.tag_name.lower() != "table":
                raise ActionError(400, "the selected element is not a <table>")
            return d.execute_script(_JS_TABLE, table)
        if what == "html":
            html = root.get_attribute("outerHTML") if root is not None else d.page_source
            html = html or ""
            return {"html": html[:limit], "truncated": len(html) > limit}
        raise ActionError(400, f"unknown extract target {what!r}: text, links, table or html")

    def evaluate(self, script: str) -> Any:
        try:
            return self.d.execute_script(script)
        except JavascriptException as exc:
            raise ActionError(400, f"script error: {exc.msg}") from exc

    # ------------------------------------------------------------ screenshots

    def screenshot(self, full_page: bool, selector: str | None, by: str | None, timeout: float) -> bytes:
        d = self.d
        if selector:
            el = self.find(selector, by, timeout, "visible")
            return el.screenshot_as_png
        if not full_page:
            return d.get_screenshot_as_png()
        metrics = d.execute_cdp_cmd("Page.getLayoutMetrics", {})
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        width = max(1, int(size["width"]))
        height = max(1, min(int(size["height"]), MAX_FULL_PAGE_HEIGHT))
        shot = d.execute_cdp_cmd(
            "Page.captureScreenshot",
            {
                "format": "png",
                "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
            },
        )
        return base64.b64decode(shot["data"])
