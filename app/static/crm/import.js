// The import page's progress bar (crm/import.html): asks the job's progress every second, moves
// the bar and says what the worker is doing; reloads the page (the summary) when the job ended.
(function () {
    "use strict";
    var box = document.querySelector(".crm-progress");
    if (!box) { return; }
    var bar = box.querySelector(".progress-bar"), text = document.querySelector(".crm-progress-text");
    var words = {queued: box.dataset.queued, checking: box.dataset.checking, writing: box.dataset.writing};

    function poll() {
        fetch(box.dataset.url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
            .then(function (r) { return r.json(); })
            .then(function (p) {
                if (p.status === "done" || p.status === "failed") { window.location.reload(); return; }
                bar.style.width = p.percent + "%"; bar.textContent = p.percent + "%";
                var line = words[p.status] || p.status;
                if ((p.status === "checking" || p.status === "writing") && p.total && p.done) {
                    line += " " + p.done + " / " + p.total + " " + box.dataset.rows;
                }
                if (p.eta_seconds !== null && p.eta_seconds !== undefined) {
                    line += "," + box.dataset.eta + " " + p.eta_seconds + " " + box.dataset.seconds;
                }
                text.textContent = line;
                setTimeout(poll, 1000);
            })
            .catch(function () { setTimeout(poll, 3000); });
    }
    poll();
})();
