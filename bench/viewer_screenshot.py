"""A picture of a run's data page (the README's docs/data-page.png): writes the page, opens it in
headless Chromium, opens one row of the chosen tab to its details, and saves a screenshot.

    python bench/viewer_screenshot.py --run runs/demo --out docs/data-page.png [--tab examples] [--row 0]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, required=True, help="the run folder")
    ap.add_argument("--out", type=Path, required=True, help="the PNG to write")
    ap.add_argument("--tab", default="examples", choices=("examples", "rejected", "answers", "curation"))
    ap.add_argument("--row", type=int, default=0, help="the row opened to its details (-1: none)")
    ap.add_argument("--size", default="1400,900", help="the window, WIDTH,HEIGHT")
    args = ap.parse_args()

    import headless
    from judge.reports.data_page import write_data_page

    if headless._missing():
        sys.exit(f"needs headless Chromium: {headless._missing()}")
    page = write_data_page(args.run)
    with headless.chromium() as driver:
        driver.set_window_size(*map(int, args.size.split(",")))
        driver.get(page.path.resolve().as_uri())
        headless.wait_ready(driver)
        driver.execute_script("window.__viewer.show(arguments[0])", args.tab)
        if args.row >= 0:
            rows = driver.find_elements("css selector", "tr.row")
            if rows:
                rows[args.row].click()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(args.out))
    print(f"wrote {args.out} ({page})")


if __name__ == "__main__":
    main()
