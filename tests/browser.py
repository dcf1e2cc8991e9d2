"""What the end-to-end tests share: Debian's Chromium driven by Playwright, phone and desktop
contexts, a watch for Content-Security-Policy violations and script errors, and the two measures
every journey asserts on the pages it visits — first-load weight and the 44 px rule.

Without Chromium a test is skipped on a developer's machine; CI sets
``HOMEVISIT_REQUIRE_BROWSER=1`` and then a missing browser fails it. A failing test leaves the
page's HTML and a screenshot under ``test-artifacts/e2e/failures/`` and prints where.
"""

import gzip
import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
REQUIRE_BROWSER = os.environ.get("HOMEVISIT_REQUIRE_BROWSER") == "1"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "e2e"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 768}
PASSWORD = "e2e-pass-2026"

# Issue 13's budgets: a page's first load with an empty cache, compressed as production serves it
# (WhiteNoise's precompressed static files, GZipMiddleware for pages), and a thumb-sized target.
PAGE_WEIGHT_LIMIT = 300 * 1024
TARGET_MIN_PX = 44

# The interactive elements of a page and the box a thumb must hit. A checkbox or radio counts
# through its label (tapping the label toggles it); hidden, collapsed and inert elements do not,
# nor a link inside a sentence (WCAG 2.5.8's inline exception: its size is the text's).
_SMALL_TARGETS_JS = """
(minimum) => {
  const selector = 'a[href], button, input:not([type=hidden]), select, textarea, summary, [role=button]';
  const small = [];
  for (const element of document.querySelectorAll(selector)) {
    const style = getComputedStyle(element);
    if (style.visibility === 'hidden' || style.pointerEvents === 'none') continue;
    if (element.closest('.visually-hidden, [hidden]')) continue;
    if (element.tagName === 'A' && style.display === 'inline') {
      const sentence = (element.parentElement.textContent || '').trim().length;
      if (sentence > (element.textContent || '').trim().length) continue;
    }
    let target = element;
    if (element.matches('input[type=checkbox], input[type=radio]') && element.labels && element.labels.length) {
      target = element.labels[0];
      if (getComputedStyle(target).pointerEvents === 'none') continue;
    }
    const box = target.getBoundingClientRect();
    if (box.width === 0 && box.height === 0) continue;
    if (box.width < minimum - 0.5 || box.height < minimum - 0.5) {
      const text = target.innerText || target.value || target.getAttribute('aria-label') || target.name || '';
      const size = `${Math.round(box.width)}x${Math.round(box.height)}`;
      small.push(`${element.tagName.toLowerCase()} 「${text.trim().slice(0, 20)}」 ${size}`);
    }
  }
  return small;
}
"""


def require_chromium() -> None:
    if CHROMIUM.exists():
        return
    if REQUIRE_BROWSER:
        pytest.fail("HOMEVISIT_REQUIRE_BROWSER=1 but /usr/bin/chromium is missing (apt-get install chromium)")
    pytest.skip("Chromium is not installed (apt-get install chromium)")


@dataclass
class PageWeights:
    """Bytes each page load brought over the wire, compressed as production sends them."""

    loads: dict[str, int] = field(default_factory=dict)
    current: str = ""

    def start(self, label: str) -> None:
        self.current = label
        self.loads[label] = 0

    def add(self, response) -> None:
        if not self.current:
            return
        try:
            body = response.body()
        except Exception:  # a redirect or an aborted request has no body
            return
        self.loads[self.current] += len(gzip.compress(body, compresslevel=9)) + 300  # + headers


class Browser:
    """One Chromium for a test; ``phone()`` and ``desktop()`` give a fresh context (empty cache)."""

    def __init__(self, playwright, live_url: str, name: str) -> None:
        self.playwright = playwright
        self.url = live_url
        self.name = name
        self.browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-background-networking", "--disable-dev-shm-usage", "--lang=zh-CN"],
        )
        self.pages: list = []
        self.problems: list[str] = []
        self.weights = PageWeights()
        self.step = 0

    def _context(self, **options):
        context = self.browser.new_context(locale="zh-CN", accept_downloads=True, **options)
        context.set_default_timeout(15_000)
        page = context.new_page()
        self._watch(page)
        page.on("response", self.weights.add)
        self.pages.append(page)
        return page

    def phone(self):
        return self._context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)

    def desktop(self):
        return self._context(viewport=DESKTOP)

    def _watch(self, page) -> None:
        page.add_init_script(
            'document.addEventListener("securitypolicyviolation", function (e) {'
            ' console.error("CSP violation: " + e.violatedDirective + " " + e.blockedURI + " at "'
            ' + e.sourceFile + ":" + e.lineNumber); });'
        )

        def on_console(message) -> None:
            # Chromium logs the failed fetch of a page taken offline: that is the test's doing.
            if message.type == "error" and "ERR_INTERNET_DISCONNECTED" not in message.text:
                self.problems.append(f"{page.url}: {message.text} ({message.location.get('url')})")

        page.on("console", on_console)
        page.on("pageerror", lambda error: self.problems.append(f"{page.url}: {error}"))

    def login(self, page, user, password: str = PASSWORD) -> None:
        page.goto(f"{self.url}/accounts/login/")
        page.fill("#id_username", user.username)
        page.fill("#id_password", password)
        page.get_by_role("button", name="登录").click()
        page.wait_for_url(lambda url: "/accounts/login/" not in url)

    def first_load(self, page, path: str, label: str) -> int:
        """Bytes of ``path`` with an empty cache: opened in a fresh context that has the page's
        session and screen, so every script, style and font is fetched again."""
        viewport = page.viewport_size
        phone = viewport["width"] < 600
        context = self.browser.new_context(
            locale="zh-CN",
            viewport=viewport,
            is_mobile=phone,
            has_touch=phone,
            storage_state=page.context.storage_state(),
        )
        probe = context.new_page()
        self._watch(probe)
        probe.on("response", self.weights.add)
        self.weights.start(label)
        probe.goto(f"{self.url}{path}")
        probe.wait_for_load_state("networkidle")
        self.weights.current = ""
        context.close()
        return self.weights.loads[label]

    def shot(self, page, label: str) -> None:
        self.step += 1
        page.screenshot(path=ARTIFACTS / f"{self.name}-{self.step:02d}-{label}.png", full_page=True)

    def small_targets(self, page) -> list[str]:
        return page.evaluate(_SMALL_TARGETS_JS, TARGET_MIN_PX)

    def overflow(self, page) -> int:
        """Pixels the page is wider than the screen (0: nothing scrolls sideways)."""
        return page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")

    def close(self) -> None:
        self.browser.close()


@pytest.fixture
def chromium(request, live_server, monkeypatch):
    """A Chromium for the test; on failure the open pages' HTML and screenshots are kept."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are safe.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = Browser(playwright, live_server.url, request.node.name)
        yield browser
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            failures = ARTIFACTS / "failures"
            failures.mkdir(parents=True, exist_ok=True)
            for number, page in enumerate(browser.pages):
                stem = failures / f"{request.node.name}-{number}"
                try:
                    stem.with_suffix(".html").write_text(page.content(), encoding="utf-8")
                    page.screenshot(path=stem.with_suffix(".png"), full_page=True)
                    print(f"\nfailed page kept: {stem}.html and {stem}.png ({page.url})")
                except Exception as exc:  # a closed page cannot be kept
                    print(f"\ncould not keep page {number}: {exc}")
        browser.close()
