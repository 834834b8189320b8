/* tensorforge graph viewer: draws the JSON in #tf-data as SVG, laid out by dagre (vendored).
 * Written for tensorforge (export/html.py). Every string from the graph is user data: it only
 * ever reaches the page through textContent or setAttribute, never as markup.
 * After drawing, #tf-status carries data-state="rendered", data-nodes, data-edges, data-matches
 * and data-errors (errors caught by window.onerror and console.error), which tests read. */
var tfViewer = (function () {
  "use strict";

  var errors = [];
  function recordError(message) {
    errors.push(String(message));
    var status = document.getElementById("tf-status");
    if (status) {
      status.setAttribute("data-errors", String(errors.length));
      status.textContent = errors.join("\n");
    }
  }
  window.addEventListener("error", function (e) { recordError(e.message || "error"); });
  window.addEventListener("unhandledrejection", function (e) { recordError("unhandled rejection: " + e.reason); });
  var consoleError = console.error;
  console.error = function () {
    recordError(Array.prototype.join.call(arguments, " "));
    return consoleError.apply(console, arguments);
  };

  var PHASE_COLORS = { forward: "#ffffff", backward: "#f4a6a0", optimizer: "#b6e3b0" };
  var PHASE_STRIPES = { forward: "#7aa7e0", backward: "#e06c62", optimizer: "#5fb356" };
  var HEAT_STOPS = [[255, 247, 188], [254, 196, 79], [240, 59, 32], [153, 0, 13]];
  var MAX_MEMBER_LINES = 12;
  var LINE = 14;

  var data, svg, viewport, SVGNS, layout, elements = {}, view = { x: 0, y: 0, s: 1 };
  var matches = [], focusIndex = -1, maxSeconds = 0, measureContext = null;

  function el(name, attrs, parent) {
    var node = document.createElementNS(SVGNS, name);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, String(attrs[k])); });
    if (parent) parent.appendChild(node);
    return node;
  }

  function html(name, text, parent, cls) {
    var node = document.createElement(name);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    if (parent) parent.appendChild(node);
    return node;
  }

  function textWidth(text, px) {
    if (!measureContext) measureContext = document.createElement("canvas").getContext("2d");
    measureContext.font = px + "px Helvetica, Arial, sans-serif";
    return measureContext.measureText(text).width;
  }

  function micro(seconds) {
    var us = seconds * 1e6;
    return (us >= 100 ? us.toFixed(0) : us >= 10 ? us.toFixed(1) : us.toFixed(2)) + " us";
  }

  // ---- what each node shows ------------------------------------------------------------------

  function nodeLines(node) {
    if (node.kind !== "fused") return node.label.map(function (t) { return { text: t, cls: "" }; });
    var head = "kernel " + node.kernel + (node.seconds !== undefined ? "  " + micro(node.seconds) : "");
    var lines = [{ text: head, cls: "tf-head" }, { text: node.shape + " " + node.dtype, cls: "" }];
    var members = node.members || [];
    members.slice(0, MAX_MEMBER_LINES).forEach(function (m) {
      lines.push({ text: m.op + "  " + m.shape, cls: "tf-member" });
    });
    if (members.length > MAX_MEMBER_LINES)
      lines.push({ text: "+ " + (members.length - MAX_MEMBER_LINES) + " more ops", cls: "tf-member" });
    return lines;
  }

  function baseFill(node) {
    if (node.kind === "op") return PHASE_COLORS[node.phase] || data.colors.op;
    return data.colors[node.kind] || "#ffffff";
  }

  function heatColor(fraction) {
    var f = Math.sqrt(Math.max(0, Math.min(1, fraction))) * (HEAT_STOPS.length - 1);
    var i = Math.min(HEAT_STOPS.length - 2, Math.floor(f)), t = f - i;
    var a = HEAT_STOPS[i], b = HEAT_STOPS[i + 1];
    var c = [0, 1, 2].map(function (k) { return Math.round(a[k] + (b[k] - a[k]) * t); });
    return "rgb(" + c.join(",") + ")";
  }

  function searchText(node) {
    var parts = [node.name, node.op, "%" + node.id].concat(node.label);
    (node.members || []).forEach(function (m) { parts.push(m.name, m.op); });
    return parts.join("\n").toLowerCase();
  }

  // ---- layout and drawing --------------------------------------------------------------------

  function nodeBoxes() {
    // [{id, width, height, lines}] in topological order (the summary node first: it has no inputs)
    var boxes = [];
    if (data.dropped) {
      var text = "... " + data.dropped + " more nodes";
      boxes.push({ id: "summary", width: textWidth(text, 11) + 20, height: LINE + 10, lines: [{ text: text, cls: "" }] });
    }
    data.nodes.forEach(function (node) {
      var lines = nodeLines(node);
      var px = node.kind === "constant" ? 10 : 11;
      var w = 0;
      lines.forEach(function (l) { w = Math.max(w, textWidth(l.text, l.cls === "tf-member" ? 10 : px)); });
      var pad = node.kind === "fused" ? 30 : 20;
      boxes.push({ id: String(node.id), width: Math.ceil(w) + pad, height: lines.length * LINE + 10, lines: lines });
    });
    return boxes;
  }

  function dagreLayout(boxes, edges) {
    var g = new dagre.graphlib.Graph({ multigraph: false });
    g.setGraph({ rankdir: "TB", nodesep: 18, ranksep: 34, edgesep: 8, marginx: 20, marginy: 20 });
    g.setDefaultEdgeLabel(function () { return {}; });
    boxes.forEach(function (b) { g.setNode(b.id, { width: b.width, height: b.height }); });
    edges.forEach(function (e) { g.setEdge(e[0], e[1]); });
    dagre.layout(g);
    var out = { nodes: {}, edges: [], width: g.graph().width, height: g.graph().height };
    g.nodes().forEach(function (id) { out.nodes[id] = g.node(id); });
    g.edges().forEach(function (e) { out.edges.push({ v: e.v, w: e.w, points: g.edge(e).points, curve: false }); });
    return out;
  }

  function computeLayout() {
    var boxes = nodeBoxes();
    var edges = data.summary_targets.map(function (t) { return ["summary", String(t)]; })
      .concat(data.edges.map(function (e) { return [String(e[0]), String(e[1])]; }));
    var engine = data.layout === "dagre" || (data.layout === "auto" && boxes.length <= data.dagre_max_nodes) ? "dagre" : "layers";
    var result = engine === "dagre" ? dagreLayout(boxes, edges)
      : tfLayers.layout(boxes, edges, { nodesep: 18, ranksep: 40, margin: 20 });
    boxes.forEach(function (b) { result.nodes[b.id].lines = b.lines; });
    result.engine = engine;
    return result;
  }

  function edgePath(edge) {
    var p = edge.points;
    var d = "M" + p[0].x + "," + p[0].y;
    if (edge.curve) return d + " C" + p[1].x + "," + p[1].y + " " + p[2].x + "," + p[2].y + " " + p[3].x + "," + p[3].y;
    for (var i = 1; i < p.length; i++) d += " L" + p[i].x + "," + p[i].y;
    return d;
  }

  function drawNodeShape(group, node, box) {
    var x = -box.width / 2, y = -box.height / 2;
    var shape;
    if (node.kind === "op" || node.kind === "gradient" || node.kind === "update") {
      shape = el("rect", { x: x, y: y, width: box.width, height: box.height, rx: box.height / 2, ry: box.height / 2 }, group);
    } else if (node.kind === "placeholder") {
      shape = el("polygon", { points: [x, y, x + box.width, y, x + box.width - 8, y + box.height, x + 8, y + box.height].join(" ") }, group);
    } else {
      shape = el("rect", { x: x, y: y, width: box.width, height: box.height, rx: 4, ry: 4 }, group);
    }
    shape.setAttribute("class", "tf-shape");
    if (node.kind === "fused")
      el("rect", { x: x + 1, y: y + 1, width: 6, height: box.height - 2, fill: PHASE_STRIPES[node.phase] || "#999", "class": "tf-phase" }, group);
    return shape;
  }

  function drawNode(node, box) {
    var group = el("g", { id: "tf-node-" + node.id, "class": "tf-node tf-kind-" + node.kind + (node.output ? " tf-output" : ""),
      transform: "translate(" + box.x + "," + box.y + ")", "data-nid": node.id }, viewport);
    var shape = drawNodeShape(group, node, box);
    var texts = [];
    var top = -box.height / 2 + 5 + LINE - 3;
    box.lines.forEach(function (line, i) {
      var t = el("text", { x: node.kind === "fused" ? -box.width / 2 + 13 : 0, y: top + i * LINE,
        "text-anchor": node.kind === "fused" ? "start" : "middle" }, group);
      if (line.cls) t.setAttribute("class", line.cls);
      t.textContent = line.text;
      texts.push(t);
    });
    group.addEventListener("mouseenter", function (e) { showTooltip(node, e); });
    group.addEventListener("mousemove", moveTooltip);
    group.addEventListener("mouseleave", hideTooltip);
    elements[node.id] = { group: group, shape: shape, texts: texts, node: node, box: box, search: searchText(node) };
  }

  function drawSummary(box) {
    var group = el("g", { id: "tf-node-summary", "class": "tf-node tf-kind-summary",
      transform: "translate(" + box.x + "," + box.y + ")" }, viewport);
    el("rect", { x: -box.width / 2, y: -box.height / 2, width: box.width, height: box.height, rx: 2,
      fill: data.colors.summary, "class": "tf-shape" }, group);
    el("text", { x: 0, y: 4, "text-anchor": "middle" }, group).textContent = box.lines[0].text;
  }

  function drawGraph() {
    var defs = el("defs", {}, svg);
    var marker = el("marker", { id: "tf-arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7,
      markerHeight: 7, orient: "auto-start-reverse" }, defs);
    el("path", { d: "M0,0 L10,5 L0,10 z", fill: "#777" }, marker);
    var edgeLayer = el("g", { id: "tf-edges" }, viewport);
    layout.edges.forEach(function (e) {
      var path = el("path", { d: edgePath(e), "class": "tf-edge" + (e.v === "summary" ? " tf-summary-edge" : ""),
        "marker-end": "url(#tf-arrow)", "data-from": e.v, "data-to": e.w }, edgeLayer);
      path.setAttribute("id", "tf-edge-" + e.v + "-" + e.w);
    });
    data.nodes.forEach(function (node) { drawNode(node, layout.nodes[String(node.id)]); });
    if (data.dropped) drawSummary(layout.nodes.summary);
    paint();
  }

  function paint() {
    var heat = maxSeconds > 0 && document.getElementById("tf-heat").checked;
    Object.keys(elements).forEach(function (id) {
      var item = elements[id], node = item.node;
      var fill = baseFill(node), dark = false;
      if (heat && node.seconds !== undefined) {
        var f = node.seconds / maxSeconds;
        fill = heatColor(f);
        dark = Math.sqrt(f) > 0.62;
      }
      item.shape.setAttribute("fill", fill);
      item.texts.forEach(function (t) { t.style.fill = dark ? "#fff" : ""; });
    });
  }

  // ---- zoom and pan --------------------------------------------------------------------------

  function applyView() {
    viewport.setAttribute("transform", "translate(" + view.x + "," + view.y + ") scale(" + view.s + ")");
  }

  function fit() {
    var rect = svg.getBoundingClientRect();
    var w = Math.max(layout.width || 1, 1), h = Math.max(layout.height || 1, 1);
    view.s = Math.min(rect.width / w, rect.height / h, 1.5) * 0.97;
    view.x = (rect.width - w * view.s) / 2;
    view.y = Math.max(0, (rect.height - h * view.s) / 2);
    applyView();
  }

  function zoomAt(factor, cx, cy) {
    var s = Math.max(0.02, Math.min(8, view.s * factor));
    view.x = cx - (cx - view.x) * (s / view.s);
    view.y = cy - (cy - view.y) * (s / view.s);
    view.s = s;
    applyView();
  }

  function centerOn(id) {
    var item = elements[id], rect = svg.getBoundingClientRect();
    if (!item) return;
    view.s = Math.max(view.s, 0.9);
    view.x = rect.width / 2 - item.box.x * view.s;
    view.y = rect.height / 2 - item.box.y * view.s;
    applyView();
  }

  function installZoomAndPan() {
    svg.addEventListener("wheel", function (e) {
      e.preventDefault();
      var rect = svg.getBoundingClientRect();
      zoomAt(Math.exp(-e.deltaY * 0.0015), e.clientX - rect.left, e.clientY - rect.top);
    }, { passive: false });
    var drag = null;
    svg.addEventListener("mousedown", function (e) {
      drag = { x: e.clientX, y: e.clientY, vx: view.x, vy: view.y };
      svg.classList.add("tf-dragging");
    });
    window.addEventListener("mousemove", function (e) {
      if (!drag) return;
      view.x = drag.vx + e.clientX - drag.x;
      view.y = drag.vy + e.clientY - drag.y;
      applyView();
    });
    window.addEventListener("mouseup", function () { drag = null; svg.classList.remove("tf-dragging"); });
    document.getElementById("tf-fit").addEventListener("click", fit);
    document.getElementById("tf-zoom-in").addEventListener("click", function () { zoomAt(1.25, svg.clientWidth / 2, svg.clientHeight / 2); });
    document.getElementById("tf-zoom-out").addEventListener("click", function () { zoomAt(0.8, svg.clientWidth / 2, svg.clientHeight / 2); });
  }

  // ---- tooltip -------------------------------------------------------------------------------

  function tooltipLines(node) {
    var lines = [node.op + "  " + node.shape + " " + node.dtype, "node %" + node.id + " · " + node.kind + " · " + node.phase];
    if (node.output) lines.push("an output");
    if (node.seconds !== undefined) {
      var share = data.profile && data.profile.kernel_seconds ? " (" + (100 * node.seconds / data.profile.kernel_seconds).toFixed(1) + "% of kernel time)" : "";
      lines.push("time: " + micro(node.seconds) + " per step" + share);
    }
    if (node.kind === "fused") {
      lines.push("", "kernel " + node.kernel + ": " + (node.members || []).length + " ops of the graph");
      (node.members || []).slice(0, 40).forEach(function (m) {
        lines.push("  %" + m.id + " " + m.op + " " + m.shape + " " + m.dtype + "  " + m.name);
      });
      if ((node.members || []).length > 40) lines.push("  ...");
      if (node.detail) lines.push("", node.detail);
    }
    return lines;
  }

  function showTooltip(node, e) {
    var tip = document.getElementById("tf-tooltip");
    tip.textContent = "";
    html("div", node.name, tip, "tf-tip-title");
    html("div", tooltipLines(node).join("\n"), tip);
    tip.hidden = false;
    moveTooltip(e);
  }

  function moveTooltip(e) {
    var tip = document.getElementById("tf-tooltip");
    var x = e.clientX + 14, y = e.clientY + 14;
    if (x + tip.offsetWidth > window.innerWidth) x = Math.max(0, e.clientX - tip.offsetWidth - 10);
    if (y + tip.offsetHeight > window.innerHeight) y = Math.max(0, e.clientY - tip.offsetHeight - 10);
    tip.style.left = x + "px";
    tip.style.top = y + "px";
  }

  function hideTooltip() { document.getElementById("tf-tooltip").hidden = true; }

  // ---- search --------------------------------------------------------------------------------

  function search(query) {
    query = query.trim().toLowerCase();
    matches = [];
    focusIndex = -1;
    Object.keys(elements).forEach(function (id) {
      var item = elements[id], hit = query !== "" && item.search.indexOf(query) >= 0;
      if (hit) matches.push(id);
      item.group.classList.toggle("tf-match", hit);
      item.group.classList.toggle("tf-dim", query !== "" && !hit);
      item.group.classList.remove("tf-focus");
    });
    document.getElementById("tf-matches").textContent = query ? matches.length + " match" + (matches.length === 1 ? "" : "es") : "";
    document.getElementById("tf-status").setAttribute("data-matches", matches.join(" "));
    return matches;
  }

  function focusNext() {
    if (!matches.length) return;
    if (focusIndex >= 0) elements[matches[focusIndex]].group.classList.remove("tf-focus");
    focusIndex = (focusIndex + 1) % matches.length;
    elements[matches[focusIndex]].group.classList.add("tf-focus");
    document.getElementById("tf-matches").textContent = (focusIndex + 1) + " of " + matches.length;
    centerOn(matches[focusIndex]);
  }

  function installSearch() {
    var box = document.getElementById("tf-search");
    box.addEventListener("input", function () { search(box.value); });
    box.addEventListener("keydown", function (e) {
      if (e.key === "Enter") focusNext();
      if (e.key === "Escape") { box.value = ""; search(""); }
    });
    document.addEventListener("keydown", function (e) {
      if (e.key === "/" && document.activeElement !== box) { e.preventDefault(); box.focus(); }
    });
    // "#q=name" (or "?q=name") preselects a search and centres its first match (the tests use it);
    // "#at=name" only centres the first node that matches name
    var preset = pageParameter("q"), at = pageParameter("at");
    if (preset) { box.value = preset; search(preset); focusNext(); }
    if (at) {
      var first = Object.keys(elements).filter(function (id) { return elements[id].search.indexOf(at.toLowerCase()) >= 0; })[0];
      if (first !== undefined) centerOn(first);
    }
  }

  function pageParameter(name) {
    var text = (window.location.hash || "").replace(/^#/, "") + "&" + (window.location.search || "").replace(/^\?/, "");
    var found = null;
    text.split("&").forEach(function (part) {
      var kv = part.split("=");
      if (kv[0] === name && kv.length > 1 && found === null) {
        try { found = decodeURIComponent(kv.slice(1).join("=").replace(/\+/g, " ")); } catch (err) { found = null; }
      }
    });
    return found;
  }

  // ---- legend and profile table --------------------------------------------------------------

  function legendRow(parent, color, text, cls) {
    var row = html("div", null, parent, "tf-legend-row");
    var swatch = html("span", null, row, "tf-swatch" + (cls ? " " + cls : ""));
    swatch.style.background = color;
    html("span", text, row);
  }

  function buildLegend() {
    var legend = document.getElementById("tf-legend");
    html("h3", "Legend", legend);
    var kinds = {}, phases = {};
    data.nodes.forEach(function (n) { kinds[n.kind] = true; phases[n.phase] = true; });
    var names = { placeholder: "input", parameter: "trainable parameter", state: "state (not trained)",
      constant: "constant", gradient: "backward (gradient)", update: "optimizer update", op: "forward op" };
    ["placeholder", "parameter", "state", "constant"].forEach(function (k) { if (kinds[k]) legendRow(legend, data.colors[k], names[k]); });
    ["forward", "backward", "optimizer"].forEach(function (p) {
      if (phases[p]) legendRow(legend, PHASE_COLORS[p], p === "forward" ? "forward op" : names[p === "backward" ? "gradient" : "update"]);
    });
    if (kinds.fused) {
      legendRow(legend, data.colors.fused, "fused kernel (lists its ops)", "tf-fused");
      html("div", "stripe: forward / backward / optimizer", legend, "tf-note");
    }
    legendRow(legend, "#ffffff", "an output (thick border)");
    html("div", data.nodes.length + " nodes, " + data.edges.length + " edges" +
      (data.dropped ? "; " + data.dropped + " more nodes not drawn" : ""), legend, "tf-note");
    html("div", "wheel: zoom · drag: pan · /: search · Enter: next match", legend, "tf-note");
  }

  function buildProfile() {
    var panel = document.getElementById("tf-profile"), p = data.profile;
    if (!p) return;
    document.getElementById("tf-heat-toggle").hidden = !(maxSeconds > 0);
    document.getElementById("tf-heat").addEventListener("change", paint);
    html("h3", "Profile", panel);
    html("div", p["function"] + " on " + p.backend + ": " + p.steps + " steps, " + micro(p.step_seconds) +
      " per step, " + micro(p.kernel_seconds) + " in kernels", panel, "tf-note");
    if (maxSeconds > 0) {
      html("div", null, panel, "tf-heatbar");
      var scale = html("div", null, panel, "tf-heatscale");
      html("span", "0", scale);
      html("span", micro(maxSeconds), scale);
    }
    var timed = data.nodes.filter(function (n) { return n.seconds !== undefined; });
    timed.sort(function (a, b) { return b.seconds - a.seconds; });
    timed.slice(0, 25).forEach(function (n) {
      var row = html("div", null, panel, "tf-kernel-row");
      html("span", micro(n.seconds), row, "tf-us");
      html("span", (n.kind === "fused" ? "kernel " + n.kernel + " " : "") + n.op + " " + n.name, row, "tf-kname");
      row.addEventListener("click", function () { centerOn(String(n.id)); });
    });
    if (p.unmatched.length) {
      html("div", "not drawn as nodes:", panel, "tf-note");
      p.unmatched.forEach(function (u) {
        var row = html("div", null, panel, "tf-kernel-row");
        html("span", micro(u[1]), row, "tf-us");
        html("span", u[0], row, "tf-kname").title = u[0];
      });
    }
  }

  // ---- start ---------------------------------------------------------------------------------

  function start() {
    var status = document.getElementById("tf-status");
    try {
      data = JSON.parse(document.getElementById("tf-data").textContent);
      svg = document.getElementById("tf-svg");
      viewport = document.getElementById("tf-viewport");
      SVGNS = svg.namespaceURI;          // the inline <svg> carries the SVG namespace: no URL in our code
      data.nodes.forEach(function (n) { if (n.seconds !== undefined) maxSeconds = Math.max(maxSeconds, n.seconds); });
      var t0 = Date.now();
      layout = computeLayout();
      drawGraph();
      buildLegend();
      buildProfile();
      paint();
      installZoomAndPan();
      fit();
      installSearch();
      status.setAttribute("data-nodes", String(Object.keys(elements).length));
      status.setAttribute("data-edges", String(layout.edges.length));
      status.setAttribute("data-layout", layout.engine);
      status.setAttribute("data-layout-ms", String(Date.now() - t0));
      status.setAttribute("data-state", "rendered");
    } catch (err) {
      recordError((err && err.stack) || err);
      status.setAttribute("data-state", "failed");
    }
  }

  return { start: start, search: search };
})();
