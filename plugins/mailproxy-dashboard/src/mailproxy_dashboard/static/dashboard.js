// Shows every <time data-ts="unix seconds"> and <time datetime="YYYY-MM-DD HH:MM:SS" (UTC)> in
// the browser's time zone.
function parseUtc(text) {
  return new Date(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/.test(text) ? text.replace(" ", "T") + "Z" : text);
}
function localTimes(root) {
  root.querySelectorAll("time").forEach(function (el) {
    var ts = el.dataset.ts ? new Date(Number(el.dataset.ts) * 1000) : parseUtc(el.getAttribute("datetime"));
    if (!isNaN(ts)) { el.textContent = ts.toLocaleString(); el.title = ts.toISOString(); }
  });
}
document.addEventListener("DOMContentLoaded", function () { localTimes(document); });
document.addEventListener("htmx:afterSwap", function (e) { localTimes(e.target); });
