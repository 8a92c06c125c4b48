#!/usr/bin/env python3
"""End-to-end test of the web dashboard in headless Chromium.

Opens the dashboard served by a running gateway, enters the API key when asked,
submits a `sleep` job from the form, watches its progress bar advance through
the live (SSE) updates, opens its details, cancels it and waits until its row
says `cancelled`, all without reloading the page, and without a problem
banner (e.g. a job list the gateway refused). Screenshots at laptop and phone
sizes go to --screenshot-dir.

Uses Debian's chromium and chromedriver (given explicitly, so Selenium Manager
downloads nothing). Every wait is bounded (at most 30 s) and the whole run is
bounded (2 minutes). Exits 0 on success, 1 on a failed check, 2 on a setup error.

    scripts/browser-test.py --base-url http://127.0.0.1:8080 --api-key SECRET --screenshot-dir .build/artifacts
"""

import argparse
import os
import sys
import time

try:
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException, WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError:
    print("browser-test: selenium is not installed (python3 -m pip install selenium; see scripts/install-deps.sh)", file=sys.stderr)
    sys.exit(2)

CHROMIUM = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER_BIN", "/usr/bin/chromedriver")
RUN_LIMIT_S = 120
WAIT_LIMIT_S = 30
LAPTOP = (1366, 850)
PHONE = (390, 844)
STEPS, STEP_MS = 100, 100  # a sleep job of about 10 s


class Failure(Exception):
    pass


class Run:
    def __init__(self, args):
        self.args = args
        self.start = time.monotonic()
        self.driver = None
        self.screenshots = []

    def log(self, message):
        print(f"[{time.monotonic() - self.start:6.1f}s] {message}", flush=True)

    def remaining(self):
        return RUN_LIMIT_S - (time.monotonic() - self.start)

    def wait(self, what, condition, timeout=WAIT_LIMIT_S, poll=0.1):
        """Waits until condition(driver) is truthy; returns its value."""
        budget = min(timeout, self.remaining())
        if budget <= 0:
            raise Failure(f"the run's {RUN_LIMIT_S} s limit was reached before: {what}")

        def check(driver):
            try:
                return condition(driver)
            except StaleElementReferenceException:
                return False

        try:
            return WebDriverWait(self.driver, budget, poll_frequency=poll).until(check)
        except TimeoutException:
            raise Failure(f"timed out after {budget:.0f} s waiting for: {what}") from None

    def find(self, css):
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def visible(self, css):
        def condition(driver):
            elements = driver.find_elements(By.CSS_SELECTOR, css)
            return elements[0] if elements and elements[0].is_displayed() else False
        return condition

    def screenshot(self, name):
        path = os.path.join(self.args.screenshot_dir, f"dashboard-{name}.png")
        if not self.driver.save_screenshot(path):
            raise Failure(f"could not save the screenshot {path}")
        self.screenshots.append(path)
        self.log(f"screenshot {path}")

    def set_viewport(self, width, height, mobile=False):
        # Exact viewport size (not window size), and a phone's touch/mobile mode.
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 2 if mobile else 1, "mobile": mobile,
        })
        self.driver.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": mobile})
        time.sleep(0.4)  # let layout and transitions settle

    # ------------------------------------------------------------------ steps

    def start_browser(self):
        for path in (CHROMIUM, CHROMEDRIVER):
            if not os.access(path, os.X_OK):
                raise SetupError(f"{path} is missing: install Debian's chromium and chromium-driver (scripts/install-deps.sh)")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--disable-extensions", "--no-first-run", "--no-default-browser-check",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--hide-scrollbars", "--force-color-profile=srgb", "--lang=en-US",
                     f"--window-size={LAPTOP[0]},{LAPTOP[1]}"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        service = Service(executable_path=CHROMEDRIVER, log_output=os.path.join(self.args.screenshot_dir, "chromedriver.log"))
        try:
            self.driver = webdriver.Chrome(service=service, options=options)
        except WebDriverException as error:
            raise SetupError(f"could not start headless Chromium: {error.msg or error}") from None
        self.driver.set_page_load_timeout(WAIT_LIMIT_S)
        self.driver.set_script_timeout(WAIT_LIMIT_S)
        self.set_viewport(*LAPTOP)

    def open_dashboard(self):
        url = self.args.base_url.rstrip("/") + "/"
        self.log(f"open {url}")
        self.driver.get(url)
        if not self.driver.find_elements(By.ID, "api-key-input"):
            raise Failure(f"{url} did not serve the dashboard (page title {self.driver.title!r})")
        # A marker that a reload would wipe: everything below must happen live.
        self.driver.execute_script("window.__browserTestMarker = 'no-reload';")
        state = self.wait("the dashboard to ask for an API key or to be ready", lambda d: (
            "prompt" if d.find_element(By.ID, "api-key-input").is_displayed()
            else d.execute_script("return document.body.dataset.auth") in ("ok", "disabled") and "ready"))
        if state == "prompt":
            if not self.args.api_key:
                raise Failure("the dashboard asks for an API key but none was given (--api-key)")
            self.log("the dashboard asks for an API key: entering it")
            field = self.find("#api-key-input")
            field.clear()
            field.send_keys(self.args.api_key)
            self.find("#api-key-save").click()
        elif self.args.api_key:
            self.log("note: the dashboard did not ask for a key (authentication disabled, or a key already stored)")
        self.wait("the API key to be accepted (body[data-auth=ok])",
                  lambda d: d.execute_script("return document.body.dataset.auth") in ("ok", "disabled")
                  and not d.find_element(By.ID, "auth-overlay").is_displayed())
        self.wait("the live connection (#connection[data-state=live])",
                  lambda d: d.find_element(By.ID, "connection").get_attribute("data-state") == "live")
        self.log("dashboard ready, live updates connected")
        self.wait("the job list to load (#jobs-loading hidden)",
                  lambda d: not d.find_element(By.ID, "jobs-loading").is_displayed())
        self.check_no_problem()

    def check_no_problem(self):
        banner = self.find("#problem-banner")
        if banner.is_displayed():
            raise Failure(f"the dashboard shows a problem: {banner.text.strip()!r}")

    def submit_sleep_job(self):
        self.wait("the submit form", self.visible("#submit-form"))
        self.wait("the job type 'sleep' in #submit-type",
                  lambda d: any(o.get_attribute("value") == "sleep"
                                for o in d.find_elements(By.CSS_SELECTOR, "#submit-type option")))
        Select(self.find("#submit-type")).select_by_value("sleep")
        steps = self.wait("the params input param-steps", self.visible('[name="param-steps"]'))
        step_ms = self.wait("the params input param-stepMs", self.visible('[name="param-stepMs"]'))
        for element, value in ((steps, STEPS), (step_ms, STEP_MS)):
            element.clear()
            element.send_keys(str(value))
        self.log(f"submit sleep with steps={STEPS}, stepMs={STEP_MS}")
        self.find("#submit-button").click()

        def submitted(driver):
            error = driver.find_element(By.ID, "submit-error")
            if error.is_displayed():
                raise Failure(f"the submit form shows an error: {error.text}")
            return driver.find_element(By.ID, "submit-form").get_attribute("data-last-job-id")
        job_id = self.wait("the submitted job's id (#submit-form[data-last-job-id])", submitted)
        self.log(f"submitted job {job_id}")
        return job_id

    def row_selector(self, job_id):
        return f'tr[data-job-id="{job_id}"]'

    def watch_progress(self, job_id):
        row_css = self.row_selector(job_id)
        self.wait(f"the row of job {job_id}", self.visible(row_css))
        self.wait("the job to be running", lambda d: d.find_element(By.CSS_SELECTOR, row_css).get_attribute("data-status") == "running")
        self.log("the job's row shows running")
        bar_css = f'{row_css} [role="progressbar"]'
        seen = []

        def advanced(driver):
            status = driver.find_element(By.CSS_SELECTOR, row_css).get_attribute("data-status")
            if status != "running":
                raise Failure(f"the job became {status} before its progress was seen advancing (values seen: {seen})")
            now = driver.find_element(By.CSS_SELECTOR, bar_css).get_attribute("aria-valuenow")
            if now is not None and now != "":
                value = int(float(now))
                if not seen or value != seen[-1]:
                    if seen and value < seen[-1]:
                        raise Failure(f"the progress went backwards: {seen} then {value}")
                    seen.append(value)
            return len(seen) >= 3
        self.wait("the progress bar to take three increasing values", advanced, poll=0.15)
        total = self.find(bar_css).get_attribute("aria-valuemax")
        self.log(f"progress advanced: aria-valuenow {seen} of {total}")

    def open_detail(self, job_id):
        # Click the row's job type (its open button), not the cancel button.
        self.find(f'{self.row_selector(job_id)} [data-action="open"]').click()
        self.wait("the job detail panel", lambda d: d.find_element(By.ID, "job-detail").is_displayed()
                  and d.find_element(By.ID, "job-detail").get_attribute("data-job-id") == job_id
                  and d.find_element(By.ID, "job-detail").get_attribute("data-status") is not None)
        detail_text = self.find("#job-detail").text.lower()  # headings are uppercased by CSS
        for expected in ("params", "timings", "attempt", "worker", "cancel requested", "stalled", '"steps"'):
            if expected not in detail_text:
                raise Failure(f"the job detail does not show {expected!r}")
        self.wait("the detail panel's progress", lambda d: d.find_element(
            By.CSS_SELECTOR, '#job-detail [role="progressbar"]').get_attribute("aria-valuenow") not in (None, ""))
        time.sleep(0.3)  # the drawer's slide-in animation

    def close_detail(self):
        self.find("#detail-close").click()
        self.wait("the detail panel to close", lambda d: not d.find_element(By.ID, "job-detail").is_displayed())

    def cancel(self, job_id):
        row_css = self.row_selector(job_id)
        button = self.wait("the row's cancel button", self.visible(f'{row_css} [data-action="cancel"]'))
        status = self.find(row_css).get_attribute("data-status")
        if status != "running":
            raise Failure(f"the job is {status} before it could be cancelled (it should run ~{STEPS * STEP_MS / 1000:.0f} s)")
        self.log("click cancel")
        button.click()
        self.wait(f"job {job_id} to show cancelled (its row's data-status)",
                  lambda d: d.find_element(By.CSS_SELECTOR, row_css).get_attribute("data-status") == "cancelled")
        badge = self.find(f"{row_css} .badge").text.strip().lower()
        if badge != "cancelled":
            raise Failure(f"the row's status badge says {badge!r}, not 'cancelled'")
        self.wait("the cancel button to disappear", lambda d: not d.find_element(
            By.CSS_SELECTOR, f'{row_css} [data-action="cancel"]').is_displayed())
        self.log("the row shows cancelled")

    def check_no_reload(self):
        if self.driver.execute_script("return window.__browserTestMarker") != "no-reload":
            raise Failure("the page was reloaded during the test: updates must come live")

    def check_snapshot_order(self):
        """Snapshots replace each other in the gateway's order, whatever their clocks say."""
        cases = [
            # A worker's clock behind the gateway's: its running and succeeded carry earlier times.
            ({"status": "running", "attempt": 1, "sequence": 1, "updatedAt": "2026-01-01T00:00:00.700Z"},
             {"status": "queued", "attempt": 1, "sequence": 0, "updatedAt": "2026-01-01T00:00:01.000Z"}, False),
            ({"status": "succeeded", "attempt": 1, "sequence": 2, "updatedAt": "2026-01-01T00:00:00.710Z"},
             {"status": "running", "attempt": 1, "sequence": 1, "updatedAt": "2026-01-01T00:00:01.000Z"}, False),
            # An ended job never goes back, however late the live snapshot's time.
            ({"status": "running", "attempt": 1, "sequence": 3, "updatedAt": "2026-01-01T00:00:09.000Z"},
             {"status": "cancelled", "attempt": 1, "sequence": 2, "updatedAt": "2026-01-01T00:00:01.000Z"}, True),
            ({"status": "queued", "attempt": 1, "sequence": 0, "updatedAt": "2026-01-01T00:00:09.000Z"},
             {"status": "running", "attempt": 2, "sequence": 1, "updatedAt": "2026-01-01T00:00:01.000Z"}, True),
            # Equal in that order (a stall mark added by a gateway): its clock decides.
            ({"status": "running", "attempt": 1, "sequence": 1, "stalled": True, "updatedAt": "2026-01-01T00:00:02.000Z"},
             {"status": "running", "attempt": 1, "sequence": 1, "updatedAt": "2026-01-01T00:00:01.000Z"}, False),
        ]
        for incoming, current, stale in cases:
            got = self.driver.execute_script("return window.jobsDashboard.isStale(arguments[0], arguments[1])", incoming, current)
            if got != stale:
                raise Failure(f"isStale({incoming}, {current}) is {got}, expected {stale}")
        self.log(f"snapshot order: {len(cases)} cases as the gateway orders them")

    def run(self):
        os.makedirs(self.args.screenshot_dir, exist_ok=True)
        self.start_browser()
        self.open_dashboard()
        self.check_snapshot_order()
        job_id = self.submit_sleep_job()
        self.watch_progress(job_id)
        self.screenshot("laptop")
        self.open_detail(job_id)
        self.screenshot("laptop-detail")
        self.close_detail()
        self.cancel(job_id)
        self.check_no_reload()
        self.set_viewport(*PHONE, mobile=True)
        self.driver.execute_script("window.scrollTo(0, 0)")
        self.screenshot("phone")
        self.open_detail(job_id)
        if self.find(f"#job-detail [data-role='badge']").text.strip().lower() != "cancelled":
            raise Failure("the detail panel does not show the job as cancelled")
        self.screenshot("phone-detail")
        self.close_detail()
        self.check_no_reload()
        self.check_no_problem()
        self.report_console_errors()

    def report_console_errors(self):
        try:
            entries = self.driver.get_log("browser")
        except WebDriverException:
            return
        # The first /whoami is refused (401) by design: that is what brings up the key prompt.
        severe = [e for e in entries if e.get("level") == "SEVERE"
                  and not ("/whoami" in e.get("message", "") and "401" in e.get("message", ""))]
        for entry in severe:
            self.log(f"browser console: {entry.get('message')}")

    def dump_failure(self):
        if not self.driver:
            return
        try:
            path = os.path.join(self.args.screenshot_dir, "dashboard-failure.png")
            self.driver.save_screenshot(path)
            print(f"browser-test: the page at the failure: {path}", file=sys.stderr)
            for entry in self.driver.get_log("browser"):
                print(f"browser-test: console {entry.get('level')}: {entry.get('message')}", file=sys.stderr)
        except WebDriverException:
            pass

    def quit(self):
        if self.driver:
            try:
                self.driver.quit()
            except WebDriverException:
                pass


class SetupError(Exception):
    pass


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", required=True, help="the gateway's address, e.g. http://127.0.0.1:8080")
    parser.add_argument("--api-key", default="", help="the API key (secret) to enter when the dashboard asks")
    parser.add_argument("--screenshot-dir", required=True, help="where the screenshots go (created if missing)")
    args = parser.parse_args()

    run = Run(args)
    try:
        run.run()
    except SetupError as error:
        print(f"browser-test: SETUP ERROR: {error}", file=sys.stderr)
        run.quit()
        return 2
    except Failure as error:
        print(f"browser-test: FAILED after {time.monotonic() - run.start:.1f} s: {error}", file=sys.stderr)
        run.dump_failure()
        run.quit()
        return 1
    except WebDriverException as error:
        print(f"browser-test: FAILED after {time.monotonic() - run.start:.1f} s: browser error: {error.msg or error}", file=sys.stderr)
        run.dump_failure()
        run.quit()
        return 1
    run.quit()
    elapsed = time.monotonic() - run.start
    print(f"browser-test: PASSED in {elapsed:.1f} s; screenshots: {', '.join(run.screenshots)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
