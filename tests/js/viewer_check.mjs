// Open the CIM Twin viewer in headless Debian Chromium (software WebGL through SwiftShader) and report what
// CesiumJS saw. Usage: node viewer_check.mjs URL SCREENSHOT.png '[[x,y,z], ...]'  (ECEF points to pick)
// Prints one JSON object: {errors, console, stats, picks, frames}.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [url, screenshot, picksJson] = process.argv.slice(2);
const picks = JSON.parse(picksJson || "[]");
const profile = mkdtempSync(join(tmpdir(), "cim-chromium-"));
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  viewport: { width: 960, height: 640 },
  args: ["--no-sandbox", "--disable-gpu", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
         "--disable-background-networking", "--disable-component-update", "--no-first-run"],
});
const result = { errors: [], console: [], requestsOutside: [] };
try {
  const page = context.pages()[0] || (await context.newPage());
  const origin = new URL(url).origin;
  page.on("console", (m) => { if (m.type() === "error" || m.type() === "warning") result.console.push(`${m.type()}: ${m.text()}`); });
  page.on("pageerror", (e) => result.errors.push(String(e)));
  page.on("request", (r) => { if (!r.url().startsWith(origin) && !r.url().startsWith("data:") && !r.url().startsWith("blob:")) result.requestsOutside.push(r.url()); });
  await page.goto(url);
  await page.waitForFunction(() => window.cimViewer && window.cimViewer.ready, null, { timeout: 180000, polling: 250 });
  // a few more frames so that the last loaded tiles are drawn
  await page.evaluate(() => new Promise((r) => { let n = 0; const f = () => (++n > 10 ? r() : requestAnimationFrame(f)); f(); }));
  result.errors.push(...(await page.evaluate(() => window.cimViewer.errors)));
  result.stats = await page.evaluate(() => window.cimViewer.stats());
  result.picks = [];
  for (const p of picks) result.picks.push(await page.evaluate(([x, y, z]) => window.cimViewer.pickWorld(x, y, z), p));
  // a real click on the first picked point: the page's own handler fills the metadata table
  if (result.picks.length && result.picks[0].window) {
    const [x, y] = result.picks[0].window;
    const box = await page.locator("#cesiumContainer canvas").first().boundingBox();
    await page.mouse.click(box.x + x, box.y + y);
    await page.waitForTimeout(500);
    result.clicked = await page.evaluate(() => Object.fromEntries(
      [...document.querySelectorAll("#info tr")].map((tr) => [tr.cells[0].textContent, tr.cells[1].textContent])));
  }
  result.frames = await page.evaluate(() => window.cimViewer.frames.length);
  result.imagery = await page.evaluate(() => window.cimViewer.imagery.length);
  if (result.frames > 1) {
    result.frameShown = await page.evaluate(async () => {
      const v = window.cimViewer; v.setFrame(1);
      return v.frames.map((t) => t.show);
    });
  }
  await page.screenshot({ path: screenshot });
} catch (err) {
  result.errors.push(String(err && err.stack ? err.stack : err));
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.stdout.write(JSON.stringify(result) + "\n");
