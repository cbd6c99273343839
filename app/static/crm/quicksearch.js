// The top bar's search box (appbuilder/navbar.html, app.web.quicksearch): records of every entity
// the person may list, grouped by entity, as they type. "/" focuses the box from anywhere on the page
// (not while typing in a field), the arrow keys move through the results, Enter opens the one
// highlighted (the first, until the arrows move) or, before any result is shown, the results page;
// Esc closes the list, a second Esc empties the box. Chinese input: nothing is asked while the input
// method is still composing. Every text goes into the page with textContent, never as HTML.
(function () {
    "use strict";
    var form = document.querySelector("form.crm-qs");
    if (!form || !window.fetch) { return; }
    var input = form.querySelector(".crm-qs-input"),
        list = form.querySelector(".crm-qs-list"),
        status = form.querySelector("[role=status]"),
        said = form.dataset,
        timer = null, asking = 0, controller = null, asked = null, composing = false,
        options = [], active = -1;

    function setOpen(open) {
        list.hidden = !open;
        input.setAttribute("aria-expanded", open ? "true" : "false");
        form.classList.toggle("crm-qs-open", open);
    }

    function activate(i) {
        options.forEach(function (option, k) {
            option.classList.toggle("active", k === i);
            option.setAttribute("aria-selected", k === i ? "true" : "false");
        });
        active = i;
        if (i >= 0) {
            input.setAttribute("aria-activedescendant", options[i].id);
            if (options[i].scrollIntoView) { options[i].scrollIntoView({block: "nearest"}); }
        } else {
            input.removeAttribute("aria-activedescendant");
        }
    }

    function note(text, warn) {
        var p = document.createElement("div");
        p.className = "crm-qs-note" + (warn ? " crm-qs-warn" : "");
        p.textContent = text;
        return p;
    }

    function option(parent, href, title, sub, extra) {
        var a = document.createElement("a");
        a.href = href;
        a.id = "crm-qs-option-" + options.length;
        a.className = "crm-qs-option" + (extra ? " " + extra : "");
        a.setAttribute("role", "option");
        a.setAttribute("aria-selected", "false");
        a.tabIndex = -1;
        var t = document.createElement("span");
        t.className = "crm-qs-title";
        t.textContent = title;
        a.appendChild(t);
        if (sub) {
            var s = document.createElement("span");
            s.className = "crm-qs-sub";
            s.textContent = sub;
            a.appendChild(s);
        }
        parent.appendChild(a);
        options.push(a);
    }

    function render(data) {
        list.textContent = "";
        options = [];
        var found = 0;
        data.groups.forEach(function (group, n) {
            var box = document.createElement("div"), head = document.createElement("div");
            box.setAttribute("role", "group");
            head.id = "crm-qs-group-" + n;
            head.className = "crm-qs-group";
            head.setAttribute("role", "presentation");
            head.textContent = group.label;
            box.setAttribute("aria-labelledby", head.id);
            box.appendChild(head);
            group.items.forEach(function (item) {
                option(box, item.url, item.title, item.sub);
                found += 1;
            });
            if (group.more) { option(box, group.more, said.more + " " + group.label + " ›", "", "crm-qs-more"); }
            list.appendChild(box);
        });
        if (!data.groups.length) { list.appendChild(note(said.none)); }
        if (data.timed_out.length) { list.appendChild(note(said.timedOut + data.timed_out.join("、"), true)); }
        if (data.groups.length) {
            var tail = document.createElement("div");
            tail.setAttribute("role", "group");
            option(tail, form.action + "?q=" + encodeURIComponent(data.q), said.all + " ›", "", "crm-qs-all");
            list.appendChild(tail);
        }
        status.textContent = found + " " + said.found;
        setOpen(true);
        activate(found ? 0 : -1);
    }

    function ask() {
        timer = null;
        var q = input.value.trim();
        if (q === asked) {
            if (q && list.childNodes.length) { setOpen(true); }
            return;
        }
        asked = q;
        if (controller) { controller.abort(); }
        if (!q) {
            list.textContent = "";
            options = [];
            status.textContent = "";
            setOpen(false);
            activate(-1);
            return;
        }
        var mine = ++asking;
        controller = window.AbortController ? new AbortController() : null;
        if (!options.length) {
            list.textContent = "";
            list.appendChild(note(said.searching));
            setOpen(true);
        }
        form.classList.add("crm-qs-busy");
        fetch(said.crmJson + "?q=" + encodeURIComponent(q), {
            credentials: "same-origin", headers: {"Accept": "application/json"}, signal: controller ? controller.signal : undefined
        }).then(function (r) {
            if (!r.ok) { throw new Error(String(r.status)); }
            return r.json();
        }).then(function (data) {
            if (mine === asking) { render(data); }
        }).catch(function (error) {
            if (mine !== asking || error.name === "AbortError") { return; }
            asked = null;
            options = [];
            list.textContent = "";
            list.appendChild(note(said.failed, true));
            setOpen(true);
        }).then(function () {
            if (mine === asking) { form.classList.remove("crm-qs-busy"); }
        });
    }

    function soon() {
        clearTimeout(timer);
        timer = setTimeout(ask, 200);
    }

    input.addEventListener("compositionstart", function () { composing = true; });
    input.addEventListener("compositionend", function () { composing = false; soon(); });
    input.addEventListener("input", function (e) {
        if (composing || e.isComposing) { return; }
        soon();
    });
    input.addEventListener("focus", function () {
        if (list.childNodes.length && input.value.trim() === asked) { setOpen(true); }
    });
    input.addEventListener("keydown", function (e) {
        if (e.isComposing || e.keyCode === 229) { return; }  // the input method's own keys (Enter picks its characters)
        var pending = timer !== null || form.classList.contains("crm-qs-busy") || input.value.trim() !== asked;
        if (e.key === "ArrowDown" || e.key === "ArrowUp") {
            e.preventDefault();
            if (!options.length) { return; }
            setOpen(true);
            var step = e.key === "ArrowDown" ? 1 : -1;
            activate((active + step + options.length) % options.length);
        } else if (e.key === "Enter") {
            if (!list.hidden && active >= 0 && !pending) {
                e.preventDefault();
                window.location.assign(options[active].href);
            } else if (!input.value.trim()) {
                e.preventDefault();
            }  // else the form goes to the results page
        } else if (e.key === "Escape") {
            e.preventDefault();
            if (!list.hidden) {
                setOpen(false);
            } else if (input.value) {
                input.value = "";
                ask();
            } else {
                input.blur();
            }
        }
    });
    input.addEventListener("blur", function () { setOpen(false); });  // Tab leaves the box: the list goes with it
    list.addEventListener("mousedown", function (e) { e.preventDefault(); });  // a click keeps the box's focus until it opens the link
    document.addEventListener("click", function (e) {
        if (!form.contains(e.target)) { setOpen(false); }
    });
    document.addEventListener("keydown", function (e) {
        if (e.key !== "/" || e.ctrlKey || e.metaKey || e.altKey || e.defaultPrevented) { return; }
        var t = e.target, tag = t && t.tagName;
        if (t && (t.isContentEditable || tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT")) { return; }
        e.preventDefault();
        input.focus();
        input.select();
    });
    form.addEventListener("submit", function (e) {
        if (!input.value.trim()) { e.preventDefault(); }
    });
})();
