"""Regenerate docs/wallboard.png: `qmon demo` for a while, then the wallboard in headless chromium (Playwright).

Usage: python scripts/wallboard_screenshot.py [seconds-of-demo] [output.png]
"""

from __future__ import annotations

import asyncio
import re
import sys
import tempfile
from pathlib import Path

from playwright.async_api import async_playwright

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]


async def main(wait_s: float, out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        demo = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "monitor", "demo", "--http-port", "0", "--speed", "4", "--seed", "7", "--db",
            str(Path(tmp) / "demo.db"), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        assert demo.stdout is not None
        try:
            url = ""
            while not url:
                line = (await asyncio.wait_for(demo.stdout.readline(), 60)).decode()
                if not line:
                    raise SystemExit("qmon demo ended before printing the wallboard URL")
                if m := re.search(r"wallboard at (http://\S+/),", line):
                    url = m.group(1)
            await asyncio.sleep(wait_s)
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
                page = await (await browser.new_context(viewport={"width": 1920, "height": 1080})).new_page()
                await page.goto(url)
                await page.wait_for_selector("article.queue")
                await asyncio.sleep(3)
                await page.screenshot(path=str(out))
                await browser.close()
        finally:
            demo.terminate()
            await demo.wait()


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 40.0,
                     Path(sys.argv[2] if len(sys.argv) > 2 else "docs/wallboard.png")))
