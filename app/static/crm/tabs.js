// A record page's tabs (app.web.recordtabs): the detail is drawn with the page; a related list
// is asked for (the page's own address, header X-CRM-Tab) the first time its tab opens. The tab
// opened is the one the address names (#FollowUpView: a form saved from that tab comes back to
// it), or the one whose paging or sorting the address carries, whatever FAB's ab_keep_tab.js
// remembered. On a phone a selector stands for the tabs.
(function () {
    "use strict";
    var $ = window.jQuery;
    if (!$) { return; }
    var nonce = (document.querySelector("script[nonce]") || {}).nonce || "";

    // The list's own scripts (FAB's delete buttons and actions) run as they would in the page:
    // the answer is this site's, drawn by the same templates; they get this page's nonce.
    function runScripts(pane) {
        Array.prototype.forEach.call(pane.querySelectorAll("script"), function (old) {
            var script = document.createElement("script");
            if (old.src) { script.src = old.src; } else { script.textContent = old.textContent; }
            script.nonce = nonce;
            old.parentNode.replaceChild(script, old);
        });
    }

    function load(pane) {
        if (pane.getAttribute("data-crm-loaded")) { return; }
        pane.setAttribute("data-crm-loaded", "1");
        var name = pane.getAttribute("data-crm-tab");
        fetch(window.location.pathname + window.location.search, {
            credentials: "same-origin", headers: {"X-CRM-Tab": name}
        }).then(function (response) {
            if (!response.ok) { throw new Error(response.status); }
            return response.text();
        }).then(function (html) {
            pane.innerHTML = html;
            pane.removeAttribute("aria-busy");
            runScripts(pane);
            $(pane).find("[data-toggle='tooltip']").tooltip();
        }).catch(function () {
            pane.removeAttribute("data-crm-loaded");
            pane.removeAttribute("aria-busy");
            $(pane).find(".crm-tab-loading").text(pane.getAttribute("data-crm-failed"));
        });
    }

    // bound before ab_keep_tab.js reopens the last tab: every way a tab opens loads it
    $(document).on("show.bs.tab", ".nav-tabs a[data-toggle='tab']", function () {
        var name = this.getAttribute("href").slice(1);
        var pane = document.getElementById(name);
        if (pane && pane.hasAttribute("data-crm-tab")) { load(pane); }
        $(".crm-tab-select").val(name);
    });

    function tabLink(name) {
        return $(".nav-tabs a[data-toggle='tab']").filter(function () {
            return this.getAttribute("href") === "#" + name;
        }).first();
    }

    function named() {  // the tab the address names: #Name, else the list its arguments page or sort
        if (window.location.hash) { return window.location.hash.slice(1); }
        var found = "";
        new URLSearchParams(window.location.search).forEach(function (_value, key) {
            var m = /^(?:page_|psize_|_oc_|_od_|_after_)(.+)$/.exec(key);
            if (m && !found && document.getElementById(m[1])) { found = m[1]; }
        });
        return found;
    }

    $(function () {
        $(".crm-tab-select").on("change", function () { tabLink(this.value).tab("show"); });
        var name = named();
        var link = name ? tabLink(name) : $();
        if (link.length) { link.tab("show"); }
        var active = $(".nav-tabs li.active a").attr("href");
        if (active) { $(".crm-tab-select").val(active.slice(1)); }
    });
}());
