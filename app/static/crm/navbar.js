/* The menu bar on one row (crm/layout.css, from 768 px): the menu's last groups that do not fit
   beside the brand, the search box, the language and the user menu are hidden and listed in
   "更多" instead, each as its heading and its entries (single entries only when groups are not enough). Measured again when the window's width
   changes; on a phone (the folded menu) every entry stays where it is. */
(function () {
    "use strict";
    var bar = document.querySelector(".navbar.crm-one-row");
    var menu = bar && bar.querySelector(".navbar-collapse > .navbar-nav");
    var more = menu && menu.querySelector("li.crm-more");
    if (!more) { return; }
    var list = more.querySelector(".dropdown-menu");
    var entries = Array.prototype.filter.call(menu.children, function (li) { return li !== more; });

    function overflowing() { return menu.scrollWidth > menu.clientWidth + 1; }

    function entryOf(li) {
        var copy = li.cloneNode(true);
        copy.className = "";
        copy.removeAttribute("id");
        return copy;
    }

    function listInMore(li) {
        var group = li.querySelector(":scope > .dropdown-menu");
        if (!group) { list.appendChild(entryOf(li)); return; }
        if (list.children.length) {
            var divider = document.createElement("li");
            divider.className = "divider";
            divider.setAttribute("role", "separator");
            list.appendChild(divider);
        }
        var heading = document.createElement("li");
        heading.className = "dropdown-header";
        heading.textContent = li.querySelector(":scope > a").textContent.trim();
        list.appendChild(heading);
        Array.prototype.forEach.call(group.children, function (item) {
            if (!item.classList.contains("divider")) { list.appendChild(entryOf(item)); }
        });
    }

    function layout() {
        entries.forEach(function (li) { li.classList.remove("crm-overflowed"); });
        list.textContent = "";
        more.classList.add("crm-more-empty");
        if (window.innerWidth < 768 || !overflowing()) { return; }
        more.classList.remove("crm-more-empty");  // "更多" takes its own room first
        // groups go first, from the last; single entries (the dashboard, my messages and its count) stay longest
        var groups = entries.filter(function (li) { return li.querySelector(":scope > .dropdown-menu"); }).reverse();
        var singles = entries.filter(function (li) { return groups.indexOf(li) < 0; }).reverse();
        groups.concat(singles).some(function (li) {
            if (!overflowing()) { return true; }
            li.classList.add("crm-overflowed");
            return false;
        });
        entries.filter(function (li) { return li.classList.contains("crm-overflowed"); }).forEach(listInMore);
    }

    var pending = false;
    function later() {
        if (pending) { return; }
        pending = true;
        window.requestAnimationFrame(function () { pending = false; layout(); });
    }
    layout();
    window.addEventListener("resize", later);
    window.addEventListener("load", later);  // the icon font may widen the entries once loaded
    if (document.fonts && document.fonts.ready) { document.fonts.ready.then(later); }
}());
