"""Opens the catalogue site that `fengine catalog docs` wrote in headless Chromium (Debian's
chromium and chromium-driver, driven by Selenium) and reports, as JSON on stdout, what the
pages show: console errors per page, search results for some words, and of one group page,
whose screenshot it saves, the chart's points, the lineage graph's nodes and the features'
statistics: histogram bins, most frequent values, drift and mean per snapshot.

    python3 tests/browser/check_site.py <site folder> <group> <screenshot.png> <word>...

No page may reach a network: the browser runs behind a proxy that refuses every request.
"""

import json
import pathlib
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By


def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1600",
        # Any request that leaves the page fails, and shows as a console error.
        "--proxy-server=http://127.0.0.1:9",
        "--proxy-bypass-list=<-loopback>",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def console_errors(driver):
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def labels(graph, selector):
    """The drawn label of each node (not its tooltip)."""
    return [
        node.find_element(By.TAG_NAME, "text").text
        for node in graph.find_elements(By.CSS_SELECTOR, selector)
    ]


def main():
    site = pathlib.Path(sys.argv[1]).resolve()
    group, screenshot, words = sys.argv[2], sys.argv[3], sys.argv[4:]
    driver = browser()
    report = {"pages": {}, "search": {}, "group": {}}
    try:
        for page in sorted(site.rglob("*.html")):
            driver.get(page.as_uri())
            report["pages"][str(page.relative_to(site))] = {
                "title": driver.title,
                "errors": console_errors(driver),
            }

        driver.get((site / "index.html").as_uri())
        search = driver.find_element(By.ID, "search")
        for word in [""] + words:
            search.clear()
            search.send_keys(word)
            results = driver.find_elements(By.CSS_SELECTOR, "#results li")
            report["search"][word] = [item.text for item in results]
        report["search_errors"] = console_errors(driver)

        driver.get((site / "groups" / f"{group}.html").as_uri())
        chart = driver.find_element(By.ID, "rows-chart")
        graph = driver.find_element(By.ID, "lineage-graph")
        report["group"] = {
            "heading": driver.find_element(By.ID, "group-name").text,
            "chart_displayed": chart.is_displayed(),
            "chart_points": len(chart.find_elements(By.CSS_SELECTOR, "circle.snapshot-point")),
            "graph_displayed": graph.is_displayed(),
            "graph_selected": labels(graph, ".lineage-node.selected"),
            "graph_neighbours": sorted(labels(graph, ".lineage-node.neighbour")),
            "graph_links": sorted(
                a.get_dom_attribute("href").rsplit("/", 1)[-1]
                for a in graph.find_elements(By.CSS_SELECTOR, "a")
            ),
        }
        report["group"]["statistics_heading"] = driver.find_element(
            By.XPATH, "//table[@id='statistics']/preceding-sibling::h2[1]"
        ).text
        report["group"]["statistics"] = {
            row.get_dom_attribute("data-feature"): {
                "displayed": row.is_displayed(),
                "bins": [
                    rect.find_element(By.TAG_NAME, "title").get_attribute("textContent")
                    for rect in row.find_elements(By.CSS_SELECTOR, "svg.histogram rect.bin")
                ],
                "bars_drawn": all(
                    rect.is_displayed() or rect.size["height"] == 0
                    for rect in row.find_elements(By.CSS_SELECTOR, "svg rect")
                ),
                "top_values": [
                    g.find_element(By.TAG_NAME, "title").get_attribute("textContent")
                    for g in row.find_elements(By.CSS_SELECTOR, "svg.top-values g")
                ],
                "drift": row.find_element(By.CSS_SELECTOR, "td.drift").text,
                "trend": [
                    point.find_element(By.TAG_NAME, "title").get_attribute("textContent")
                    for point in row.find_elements(By.CSS_SELECTOR, "svg.mean-trend circle")
                ],
            }
            for row in driver.find_elements(By.CSS_SELECTOR, "#statistics tr.feature-statistics")
        }
        pathlib.Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
        driver.set_window_size(1280, driver.execute_script("return document.body.scrollHeight") + 40)
        driver.save_screenshot(screenshot)

        # A neighbour's node opens its page, centred on it.
        neighbour = graph.find_element(By.CSS_SELECTOR, f'a[href="{group}_doubled.html"]')
        driver.execute_script(
            "arguments[0].dispatchEvent(new MouseEvent('click', {bubbles: true}))", neighbour
        )
        report["group"]["followed_to"] = driver.find_element(By.ID, "group-name").text
    finally:
        driver.quit()
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
