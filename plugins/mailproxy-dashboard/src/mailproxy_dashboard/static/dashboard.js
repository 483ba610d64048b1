// Shows every <time data-ts="unix seconds"> and <time datetime="ISO"> in the browser's time zone.
function localTimes(root) {
  root.querySelectorAll("time").forEach(function (el) {
    var ts = el.dataset.ts ? new Date(Number(el.dataset.ts) * 1000) : new Date(el.getAttribute("datetime"));
    if (!isNaN(ts)) { el.textContent = ts.toLocaleString(); el.title = ts.toISOString(); }
  });
}
document.addEventListener("DOMContentLoaded", function () { localTimes(document); });
document.addEventListener("htmx:afterSwap", function (e) { localTimes(e.target); });
