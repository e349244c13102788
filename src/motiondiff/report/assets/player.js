/* motiondiff motion player: plain JavaScript and one canvas per motion, no library, nothing fetched.

   MotionPlayer.mount(element, payload) mounts a player on the data motiondiff.report.player.motions_payload writes:
   {version, autoplay, panels: [{label, caption, fps, frames, joints, dims, parents, names, decimals, steps, prompts}]}
   (steps: frames x joints x dims whole numbers, flat: frame 0, then each frame's change from the one before, in
   units of 10^-decimals; prompts: [[start, end, prompt], ...] runs of frames, or null).
   3D motions (metres, y up) are seen through an orbit camera (drag to rotate, wheel to zoom, double-click to reset)
   over a ground grid; 2D keypoints (y up) on fixed axes shared by every 2D panel, as motiondiff's videos draw them.
   Test hook, read-only: window.motiondiffPlayers[element id].state() ->
   {frame, frames, playing, panels: [{label, joints_drawn, bones_drawn}]}; setFrame(i) is what the slider calls. */
(function () {
  "use strict";
  if (window.MotionPlayer) return; // a page that inlines the player twice keeps the first

  var COLOURS = { left: "rgb(40,110,220)", right: "rgb(225,70,50)", centre: "rgb(60,60,60)" };
  var BACKGROUND = "rgb(246,246,242)";
  var GRID = "rgb(214,214,206)";
  var GRID_AXIS = "rgb(180,180,170)";
  var SHADOW = "rgba(120,120,110,0.28)";
  var TRAJECTORY = "rgba(110,110,170,0.55)";
  var JOINT = "rgb(20,20,20)";
  var HEAD_FILL = "rgb(250,250,247)";
  var SPEEDS = [0.25, 0.5, 1, 2];
  var NEAR = 0.05; // metres: nothing nearer the camera than this is drawn
  var FOV = (40 * Math.PI) / 180;
  var AZIMUTH = (35 * Math.PI) / 180; // front-right of a person facing +Z, as motiondiff's 3D videos
  var ELEVATION = (18 * Math.PI) / 180;
  var BONE_RADIUS = 0.022; // metres, in perspective
  var JOINT_RADIUS = 0.03;
  var HEAD_RADIUS = 0.1;
  var GRID_STEP = 0.5; // metres between ground lines
  var FILL = 0.82; // the framing sphere may touch the view's edges: figures fill the panel
  var FOLLOW_BEYOND = 3.0; // metres of root travel past which the camera follows the root by default

  function sideOf(name) {
    var lowered = String(name).toLowerCase();
    if (lowered.indexOf("left") === 0 || lowered.indexOf("l_") === 0 || lowered.indexOf("_left") >= 0) return "left";
    if (lowered.indexOf("right") === 0 || lowered.indexOf("r_") === 0 || lowered.indexOf("_right") >= 0) return "right";
    return "centre";
  }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /* A panel's data with its positions in a typed array and what drawing needs once: sides, head, extents. */
  function decodePositions(raw) {
    var count = raw.frames * raw.joints * raw.dims, stride = raw.joints * raw.dims;
    var steps = raw.steps || [];
    if (steps.length !== count) {
      throw new Error("motion '" + raw.label + "' has " + steps.length + " numbers, expected " + count);
    }
    var sums = new Float64Array(count), unit = Math.pow(10, -raw.decimals), pos = new Float64Array(count);
    for (var i = 0; i < count; i++) {
      sums[i] = i < stride ? steps[i] : sums[i - stride] + steps[i]; // whole numbers: exact, no drift
      pos[i] = sums[i] * unit;
    }
    return pos;
  }

  function decodePanel(raw) {
    var count = raw.frames * raw.joints * raw.dims;
    var panel = {
      label: raw.label,
      caption: raw.caption || "",
      fps: raw.fps,
      frames: raw.frames,
      joints: raw.joints,
      dims: raw.dims,
      parents: raw.parents,
      pos: decodePositions(raw),
      prompts: raw.prompts || null,
      sides: [],
      head: -1,
      jointsDrawn: 0,
      bonesDrawn: 0,
    };
    for (var j = 0; j < raw.joints; j++) panel.sides.push(raw.names ? sideOf(raw.names[j]) : "centre");
    if (raw.names) {
      var head = raw.names.map(function (n) { return String(n).toLowerCase(); }).indexOf("head");
      if (head >= 0 && raw.parents[head] >= 0) panel.head = head;
    }
    var lo = [Infinity, Infinity, Infinity], hi = [-Infinity, -Infinity, -Infinity];
    for (var i = 0; i < count; i += raw.dims) {
      for (var d = 0; d < raw.dims; d++) {
        lo[d] = Math.min(lo[d], panel.pos[i + d]);
        hi[d] = Math.max(hi[d], panel.pos[i + d]);
      }
    }
    panel.lo = lo;
    panel.hi = hi;
    if (raw.dims === 3) {
      lo[1] = Math.min(lo[1], 0); // the ground stays in view
      hi[1] += HEAD_RADIUS * 2;
      var reach = 0, travel = 0, stride = raw.joints * 3;
      for (var f = 0; f < raw.frames; f++) {
        var rx = panel.pos[f * stride], rz = panel.pos[f * stride + 2];
        travel = Math.max(travel, Math.hypot(rx - panel.pos[0], rz - panel.pos[2]));
        for (var k = 0; k < raw.joints; k++) {
          var b = f * stride + k * 3;
          reach = Math.max(reach, Math.hypot(panel.pos[b] - rx, panel.pos[b + 2] - rz));
        }
      }
      panel.travel = travel;
      // Radius of a sphere around the body at any frame (follow mode) and around the whole clip (fixed camera).
      panel.bodyRadius = 0.5 * Math.hypot(2 * reach + 0.4, hi[1] - lo[1]);
      panel.clipRadius = 0.5 * Math.hypot(hi[0] - lo[0] + 0.4, hi[1] - lo[1], hi[2] - lo[2] + 0.4);
    }
    return panel;
  }

  /* The orbit camera: unit vectors right, up, back (towards the camera) for a yaw and pitch. */
  function cameraBasis(yaw, pitch) {
    var back = [-Math.sin(yaw) * Math.cos(pitch), Math.sin(pitch), Math.cos(yaw) * Math.cos(pitch)];
    var right = [back[2], 0, -back[0]]; // up x back, normalised below
    var norm = Math.hypot(right[0], right[2]) || 1;
    right = [right[0] / norm, 0, right[2] / norm];
    var up = [
      back[1] * right[2] - back[2] * right[1],
      back[2] * right[0] - back[0] * right[2],
      back[0] * right[1] - back[1] * right[0],
    ];
    return { right: right, up: up, back: back };
  }

  function Player(root, payload) {
    if (!payload || !payload.panels || !payload.panels.length) throw new Error("the player needs at least one motion");
    this.root = root;
    this.panels = payload.panels.map(decodePanel);
    this.fps = Math.max.apply(null, this.panels.map(function (p) { return p.fps; }));
    var fps = this.fps;
    this.frames = Math.max.apply(null, this.panels.map(function (p) { return Math.round((p.frames * fps) / p.fps); }));
    this.frame = 0;
    this.playing = false;
    this.speed = 1;
    this.clock = 0; // seconds into the motion while playing
    this.has3d = this.panels.some(function (p) { return p.dims === 3; });
    this.follow = this.panels.some(function (p) { return p.dims === 3 && p.travel > FOLLOW_BEYOND; });
    this.resetView();
    this.bounds2d = this.commonBounds2d();
    this.build();
    this.setFrame(0);
    if (payload.autoplay) this.play();
  }

  Player.prototype.resetView = function () {
    this.yaw = AZIMUTH;
    this.pitch = ELEVATION;
    this.zoom = 1;
  };

  /* (xmin, xmax, ymin, ymax) of every 2D panel over all frames, padded: one set of axes, so sizes compare. */
  Player.prototype.commonBounds2d = function () {
    var flat = this.panels.filter(function (p) { return p.dims === 2; });
    if (!flat.length) return null;
    var x0 = Math.min.apply(null, flat.map(function (p) { return p.lo[0]; }));
    var x1 = Math.max.apply(null, flat.map(function (p) { return p.hi[0]; }));
    var y0 = Math.min.apply(null, flat.map(function (p) { return p.lo[1]; }));
    var y1 = Math.max.apply(null, flat.map(function (p) { return p.hi[1]; }));
    var pad = 0.1 * Math.max(x1 - x0, y1 - y0, 1e-6);
    return [x0 - pad, x1 + pad, y0 - pad, y1 + pad];
  };

  Player.prototype.build = function () {
    var self = this;
    this.root.classList.add("motion-player");
    this.root.textContent = "";
    this.root.tabIndex = 0;
    var controls = element("div", "mp-controls");
    this.button = element("button", "mp-play", "\u25B6 play");
    this.button.type = "button";
    this.button.title = "play / pause (space)";
    this.button.addEventListener("click", function () { self.toggle(); });
    this.slider = element("input", "mp-slider");
    this.slider.type = "range";
    this.slider.min = 0;
    this.slider.max = Math.max(0, this.frames - 1);
    this.slider.step = 1;
    this.slider.value = 0;
    this.slider.setAttribute("aria-label", "frame");
    this.slider.addEventListener("input", function () {
      self.pause();
      self.setFrame(parseInt(self.slider.value, 10));
    });
    this.counter = element("span", "mp-counter");
    var speedLabel = element("label", "mp-option", "speed ");
    this.speedSelect = element("select", "mp-speed");
    SPEEDS.forEach(function (s) {
      var option = element("option", "", s + "\u00D7");
      option.value = s;
      if (s === 1) option.selected = true;
      self.speedSelect.appendChild(option);
    });
    this.speedSelect.addEventListener("change", function () { self.speed = parseFloat(self.speedSelect.value); });
    speedLabel.appendChild(this.speedSelect);
    controls.append(this.button, this.slider, this.counter, speedLabel);
    if (this.has3d) {
      var followLabel = element("label", "mp-option");
      this.followBox = element("input");
      this.followBox.type = "checkbox";
      this.followBox.checked = this.follow;
      this.followBox.addEventListener("change", function () { self.follow = self.followBox.checked; self.draw(); });
      followLabel.append(this.followBox, document.createTextNode(" follow"));
      followLabel.title = "keep the camera on the root (for motions that travel far)";
      var reset = element("button", "mp-reset", "reset view");
      reset.type = "button";
      reset.addEventListener("click", function () { self.resetView(); self.draw(); });
      controls.append(followLabel, reset);
    }
    var legend = element("span", "mp-legend");
    if (this.panels.some(function (p) { return p.sides.indexOf("left") >= 0; })) {
      ["left", "right"].forEach(function (side) {
        var key = element("span", "mp-key mp-" + side, side);
        legend.appendChild(key);
      });
      controls.appendChild(legend);
    }
    var grid = element("div", "mp-panels");
    this.panels.forEach(function (panel) {
      var figure = element("figure", "mp-panel");
      figure.appendChild(element("div", "mp-label", panel.label));
      panel.canvas = element("canvas", "mp-canvas");
      panel.canvas.setAttribute("role", "img");
      panel.canvas.setAttribute("aria-label", panel.label + (panel.caption ? ": " + panel.caption : ""));
      figure.appendChild(panel.canvas);
      if (panel.caption) figure.appendChild(element("figcaption", "mp-caption", panel.caption));
      if (panel.prompts) {
        var bar = element("div", "mp-segments");
        panel.segmentNodes = panel.prompts.map(function (run) {
          var part = element("span", "mp-segment");
          part.style.flexGrow = run[1] - run[0];
          part.title = (run[0] / panel.fps).toFixed(1) + "-" + (run[1] / panel.fps).toFixed(1) + " s: " + run[2];
          bar.appendChild(part);
          return part;
        });
        figure.appendChild(bar);
        panel.promptNode = element("div", "mp-prompt");
        figure.appendChild(panel.promptNode);
      }
      self.attachCamera(panel);
      grid.appendChild(figure);
    });
    var hint = element(
      "div",
      "mp-hint",
      (this.has3d ? "drag to rotate \u00B7 wheel to zoom \u00B7 double-click to reset \u00B7 " : "wheel to zoom \u00B7 ") +
        "space: play/pause \u00B7 \u2190 \u2192: step a frame"
    );
    this.root.append(controls, grid, hint);
    this.root.addEventListener("keydown", function (event) { self.onKey(event); });
    if (window.ResizeObserver) {
      new ResizeObserver(function () { self.draw(); }).observe(grid);
    }
  };

  Player.prototype.attachCamera = function (panel) {
    var self = this, canvas = panel.canvas, last = null;
    canvas.addEventListener("pointerdown", function (event) {
      if (panel.dims !== 3) return;
      last = [event.clientX, event.clientY];
      canvas.setPointerCapture(event.pointerId);
    });
    canvas.addEventListener("pointermove", function (event) {
      if (!last) return;
      self.yaw -= (event.clientX - last[0]) * 0.01;
      self.pitch = Math.min(1.45, Math.max(-0.15, self.pitch + (event.clientY - last[1]) * 0.01));
      last = [event.clientX, event.clientY];
      self.draw();
    });
    var release = function () { last = null; };
    canvas.addEventListener("pointerup", release);
    canvas.addEventListener("pointercancel", release);
    canvas.addEventListener(
      "wheel",
      function (event) {
        event.preventDefault();
        self.zoom = Math.min(8, Math.max(0.15, self.zoom * Math.exp(event.deltaY * 0.0015)));
        self.draw();
      },
      { passive: false }
    );
    canvas.addEventListener("dblclick", function () { self.resetView(); self.draw(); });
  };

  Player.prototype.onKey = function (event) {
    var tag = event.target && event.target.tagName;
    if (tag === "SELECT" || tag === "BUTTON" || tag === "INPUT") return; // their own keys (space clicks a button)
    if (event.key === " " || event.key === "k") this.toggle();
    else if (event.key === "ArrowRight") { this.pause(); this.setFrame(this.frame + 1); }
    else if (event.key === "ArrowLeft") { this.pause(); this.setFrame(this.frame - 1); }
    else if (event.key === "Home") { this.pause(); this.setFrame(0); }
    else if (event.key === "End") { this.pause(); this.setFrame(this.frames - 1); }
    else return;
    event.preventDefault();
  };

  Player.prototype.toggle = function () { if (this.playing) this.pause(); else this.play(); };

  Player.prototype.play = function () {
    if (this.playing) return;
    var self = this;
    if (this.frame >= this.frames - 1) this.setFrame(0);
    this.playing = true;
    this.clock = this.frame / this.fps;
    this.button.textContent = "\u275A\u275A pause";
    var before = null;
    var tick = function (now) {
      if (!self.playing) return;
      if (before !== null) {
        self.clock += ((now - before) / 1000) * self.speed;
        var frame = Math.floor(self.clock * self.fps + 1e-6);
        if (frame >= self.frames) { // loop
          self.clock -= self.frames / self.fps;
          frame = Math.max(0, Math.floor(self.clock * self.fps + 1e-6));
        }
        if (frame !== self.frame) self.show(frame);
      }
      before = now;
      self.request = window.requestAnimationFrame(tick);
    };
    this.request = window.requestAnimationFrame(tick);
  };

  Player.prototype.pause = function () {
    this.playing = false;
    if (this.request) window.cancelAnimationFrame(this.request);
    this.button.textContent = "\u25B6 play";
  };

  /* Show frame i (clamped): the slider, the counter, every panel. */
  Player.prototype.setFrame = function (i) {
    i = Math.max(0, Math.min(this.frames - 1, Math.round(Number(i) || 0)));
    this.clock = i / this.fps;
    this.show(i);
  };

  Player.prototype.show = function (i) {
    this.frame = i;
    this.slider.value = i;
    this.counter.textContent = "frame " + (i + 1) + "/" + this.frames + " \u00B7 " + (i / this.fps).toFixed(1) + " s";
    this.draw();
  };

  /* The frame of `panel` shown at the player's frame (a panel of another rate or length keeps pace, then holds). */
  Player.prototype.panelFrame = function (panel) {
    var own = Math.floor((this.frame / this.fps) * panel.fps + 1e-6);
    return Math.min(panel.frames - 1, own);
  };

  Player.prototype.draw = function () {
    for (var p = 0; p < this.panels.length; p++) this.drawPanel(this.panels[p]);
  };

  Player.prototype.drawPanel = function (panel) {
    var canvas = panel.canvas, ratio = window.devicePixelRatio || 1;
    var width = Math.max(1, Math.round(canvas.clientWidth * ratio));
    var height = Math.max(1, Math.round(canvas.clientHeight * ratio));
    if (canvas.width !== width || canvas.height !== height) {
      canvas.width = width;
      canvas.height = height;
    }
    var ctx = canvas.getContext("2d");
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = BACKGROUND;
    ctx.fillRect(0, 0, width, height);
    var frame = this.panelFrame(panel);
    var pixels = panel.dims === 3 ? this.project3d(panel, frame, ctx, width, height) : this.project2d(panel, frame, ctx, width, height);
    this.drawFigure(panel, ctx, pixels, width, height, ratio);
    var ended = this.frame > 0 && frame === panel.frames - 1 && this.frameOfEnd(panel) < this.frame;
    ctx.font = Math.round(12 * ratio) + "px sans-serif";
    ctx.fillStyle = "rgba(40,40,40,0.75)";
    ctx.textBaseline = "top";
    ctx.fillText(ended ? "end " + panel.frames + "/" + panel.frames : (frame + 1) + "/" + panel.frames, 6 * ratio, 5 * ratio);
    if (panel.prompts) this.showPrompt(panel, frame);
  };

  Player.prototype.frameOfEnd = function (panel) {
    return Math.round(((panel.frames - 1) / panel.fps) * this.fps);
  };

  Player.prototype.showPrompt = function (panel, frame) {
    for (var r = 0; r < panel.prompts.length; r++) {
      var run = panel.prompts[r], active = run[0] <= frame && frame < run[1];
      panel.segmentNodes[r].classList.toggle("mp-active", active);
      if (active && panel.promptNode.textContent !== run[2]) panel.promptNode.textContent = run[2];
    }
  };

  /* 3D: ground grid, root path and shadow drawn here; returns {points: [[x, y, depth, radius]], scale} for the figure. */
  Player.prototype.project3d = function (panel, frame, ctx, width, height) {
    var basis = cameraBasis(this.yaw, this.pitch);
    var stride = panel.joints * 3, base = frame * stride, pos = panel.pos;
    var target;
    if (this.follow) {
      target = [pos[base], 0.5 * (panel.lo[1] + panel.hi[1]), pos[base + 2]];
    } else {
      target = [0.5 * (panel.lo[0] + panel.hi[0]), 0.5 * (panel.lo[1] + panel.hi[1]), 0.5 * (panel.lo[2] + panel.hi[2])];
    }
    var radius = this.sharedRadius();
    var distance = (radius / Math.sin(FOV / 2)) * FILL * this.zoom;
    var eye = [0, 1, 2].map(function (d) { return target[d] + distance * basis.back[d]; });
    var focal = (0.5 * Math.min(width, height)) / Math.tan(FOV / 2);
    var cx = width / 2, cy = height / 2;
    var toCamera = function (x, y, z) {
      var rx = x - eye[0], ry = y - eye[1], rz = z - eye[2];
      return [
        rx * basis.right[0] + ry * basis.right[1] + rz * basis.right[2],
        rx * basis.up[0] + ry * basis.up[1] + rz * basis.up[2],
        -(rx * basis.back[0] + ry * basis.back[1] + rz * basis.back[2]),
      ];
    };
    var toScreen = function (c) { return [cx + (focal * c[0]) / c[2], cy - (focal * c[1]) / c[2]]; };
    var segment = function (a, b) { // a world segment, cut at the near plane; null when wholly behind
      var p = toCamera(a[0], a[1], a[2]), q = toCamera(b[0], b[1], b[2]);
      if (p[2] < NEAR && q[2] < NEAR) return null;
      if (p[2] < NEAR || q[2] < NEAR) {
        var t = (NEAR - p[2]) / (q[2] - p[2]);
        var cut = [p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1]), NEAR];
        if (p[2] < NEAR) p = cut; else q = cut;
      }
      return [toScreen(p), toScreen(q)];
    };
    // Ground grid around the clip (or around the root when following), one line every GRID_STEP metres.
    var span = Math.max(2, radius * 1.6);
    var gx0 = Math.floor((Math.min(panel.lo[0], target[0] - span) - 1) / GRID_STEP) * GRID_STEP;
    var gx1 = Math.ceil((Math.max(panel.hi[0], target[0] + span) + 1) / GRID_STEP) * GRID_STEP;
    var gz0 = Math.floor((Math.min(panel.lo[2], target[2] - span) - 1) / GRID_STEP) * GRID_STEP;
    var gz1 = Math.ceil((Math.max(panel.hi[2], target[2] + span) + 1) / GRID_STEP) * GRID_STEP;
    ctx.lineWidth = Math.max(1, Math.min(width, height) / 400);
    var lines = [];
    for (var gx = gx0; gx <= gx1 + 1e-9; gx += GRID_STEP) lines.push([[gx, 0, gz0], [gx, 0, gz1], Math.abs(gx) < 1e-9]);
    for (var gz = gz0; gz <= gz1 + 1e-9; gz += GRID_STEP) lines.push([[gx0, 0, gz], [gx1, 0, gz], Math.abs(gz) < 1e-9]);
    lines.forEach(function (line) {
      var s = segment(line[0], line[1]);
      if (!s) return;
      ctx.strokeStyle = line[2] ? GRID_AXIS : GRID;
      ctx.beginPath();
      ctx.moveTo(s[0][0], s[0][1]);
      ctx.lineTo(s[1][0], s[1][1]);
      ctx.stroke();
    });
    // The root's path on the ground over the whole clip.
    ctx.strokeStyle = TRAJECTORY;
    ctx.lineWidth = Math.max(1, Math.min(width, height) / 250);
    ctx.beginPath();
    for (var f = 1; f < panel.frames; f++) {
      var s = segment([pos[(f - 1) * stride], 0, pos[(f - 1) * stride + 2]], [pos[f * stride], 0, pos[f * stride + 2]]);
      if (s) { ctx.moveTo(s[0][0], s[0][1]); ctx.lineTo(s[1][0], s[1][1]); }
    }
    ctx.stroke();
    // The shadow: bones flattened onto the ground.
    ctx.strokeStyle = SHADOW;
    ctx.lineCap = "round";
    for (var j = 0; j < panel.joints; j++) {
      var parent = panel.parents[j];
      if (parent < 0) continue;
      var a = base + parent * 3, b = base + j * 3;
      var shadow = segment([pos[a], 0, pos[a + 2]], [pos[b], 0, pos[b + 2]]);
      if (!shadow) continue;
      var depth = toCamera(pos[b], 0, pos[b + 2])[2];
      ctx.lineWidth = Math.max(1, (focal * BONE_RADIUS * 2) / Math.max(depth, NEAR));
      ctx.beginPath();
      ctx.moveTo(shadow[0][0], shadow[0][1]);
      ctx.lineTo(shadow[1][0], shadow[1][1]);
      ctx.stroke();
    }
    var points = [];
    for (var k = 0; k < panel.joints; k++) {
      var c = toCamera(pos[base + k * 3], pos[base + k * 3 + 1], pos[base + k * 3 + 2]);
      var screen = c[2] >= NEAR ? toScreen(c) : [NaN, NaN];
      points.push([screen[0], screen[1], c[2], focal / Math.max(c[2], NEAR)]); // x, y, depth, pixels per metre
    }
    return points;
  };

  /* The sphere radius every 3D panel is framed for: the largest body (following) or clip (fixed camera). */
  Player.prototype.sharedRadius = function () {
    var follow = this.follow;
    return Math.max.apply(
      null,
      this.panels.map(function (p) { return p.dims === 3 ? (follow ? p.bodyRadius : p.clipRadius) : 0; })
    );
  };

  /* 2D: fixed axes shared by the 2D panels (y up), a ground line at y = 0 when in view. */
  Player.prototype.project2d = function (panel, frame, ctx, width, height) {
    var b = this.bounds2d, cx = 0.5 * (b[0] + b[1]), cy = 0.5 * (b[2] + b[3]);
    var scale = Math.min(width / (b[1] - b[0]), height / (b[3] - b[2])) / this.zoom;
    var toX = function (x) { return width / 2 + (x - cx) * scale; };
    var toY = function (y) { return height / 2 - (y - cy) * scale; };
    if (b[2] <= 0 && 0 <= b[3]) {
      ctx.strokeStyle = GRID_AXIS;
      ctx.lineWidth = Math.max(1, Math.min(width, height) / 300);
      ctx.beginPath();
      ctx.moveTo(0, toY(0));
      ctx.lineTo(width, toY(0));
      ctx.stroke();
    }
    var stride = panel.joints * 2, base = frame * stride, points = [];
    var unit = Math.min(width, height) / 64; // bone width in pixels, as motiondiff's 2D videos draw them
    for (var k = 0; k < panel.joints; k++) {
      points.push([toX(panel.pos[base + k * 2]), toY(panel.pos[base + k * 2 + 1]), 1, null, unit]);
    }
    return points;
  };

  /* Bones far to near, then joints and the head ring; counts what lands on the canvas. */
  Player.prototype.drawFigure = function (panel, ctx, points, width, height, ratio) {
    var flat = panel.dims === 2, order = [], bones = 0, joints = 0;
    var visible = function (p) { return isFinite(p[0]) && isFinite(p[1]) && p[0] >= 0 && p[0] <= width && p[1] >= 0 && p[1] <= height; };
    for (var j = 0; j < panel.joints; j++) if (panel.parents[j] >= 0) order.push(j);
    order.sort(function (a, b) {
      return points[b][2] + points[panel.parents[b]][2] - (points[a][2] + points[panel.parents[a]][2]);
    });
    ctx.lineCap = "round";
    order.forEach(function (j) {
      var p = points[panel.parents[j]], q = points[j];
      if (!(isFinite(p[0]) && isFinite(q[0]))) return;
      ctx.strokeStyle = COLOURS[panel.sides[j]];
      ctx.lineWidth = flat ? Math.max(2, q[4]) : Math.max(1.5 * ratio, 2 * BONE_RADIUS * 0.5 * (p[3] + q[3]));
      ctx.beginPath();
      ctx.moveTo(p[0], p[1]);
      ctx.lineTo(q[0], q[1]);
      ctx.stroke();
      if (visible(p) || visible(q)) bones++;
    });
    if (panel.head >= 0) {
      var h = points[panel.head], neck = points[panel.parents[panel.head]];
      if (isFinite(h[0]) && isFinite(neck[0])) {
        var r = flat ? Math.max(2, 0.9 * Math.hypot(h[0] - neck[0], h[1] - neck[1])) : HEAD_RADIUS * h[3];
        ctx.beginPath();
        ctx.arc(h[0], h[1], r, 0, 2 * Math.PI);
        ctx.fillStyle = HEAD_FILL;
        ctx.fill();
        ctx.strokeStyle = COLOURS.centre;
        ctx.lineWidth = flat ? Math.max(2, h[4]) : Math.max(1.5 * ratio, 2 * BONE_RADIUS * h[3]);
        ctx.stroke();
      }
    }
    ctx.fillStyle = JOINT;
    points.forEach(function (p, j) {
      if (!isFinite(p[0])) return;
      if (visible(p)) joints++;
      if (j === panel.head) return; // the ring marks it
      var r = flat ? Math.max(1.5 * ratio, p[4] * 0.58) : Math.max(1.5 * ratio, JOINT_RADIUS * p[3]);
      ctx.beginPath();
      ctx.arc(p[0], p[1], r, 0, 2 * Math.PI);
      ctx.fill();
    });
    panel.jointsDrawn = joints;
    panel.bonesDrawn = bones;
  };

  Player.prototype.state = function () {
    return {
      frame: this.frame,
      frames: this.frames,
      playing: this.playing,
      panels: this.panels.map(function (p) {
        return { label: p.label, joints_drawn: p.jointsDrawn, bones_drawn: p.bonesDrawn };
      }),
    };
  };

  var players = (window.motiondiffPlayers = window.motiondiffPlayers || {});

  window.MotionPlayer = {
    /* Mount a player into `element` on `payload` (motions_payload's data); returns it. */
    mount: function (root, payload) {
      var player = new Player(root, payload);
      if (root.id) players[root.id] = player;
      return player;
    },
    /* Mount on the JSON in <script id="ID-data"> into the element with id ID (what player_html writes). */
    mountFromData: function (id) {
      var root = document.getElementById(id);
      try {
        return window.MotionPlayer.mount(root, JSON.parse(document.getElementById(id + "-data").textContent));
      } catch (error) {
        root.textContent = "The motion player could not start: " + error.message;
        root.classList.add("mp-error");
        throw error;
      }
    },
  };
})();
