/* motiondiff app page: the form, one POST /api/generate per press, the result in the report's motion player.
   The server bounds every request (HTTP 400 with {"error": ...}, shown here as it is); the form's own min/max
   only guide typing. The run's facts come inlined in <script id="app-info"> (the same as GET /api/info). */
(function () {
  "use strict";
  var info = JSON.parse(document.getElementById("app-info").textContent);
  var model = info.model, limits = info.limits, text = model.kind === "text";
  var $ = function (id) { return document.getElementById(id); };
  var form = $("form"), button = $("generate"), statusLine = $("status"), errorBox = $("error");

  function plural(n, word) { return n + " " + word + (n === 1 ? "" : "s"); }
  function seconds(frames) { return (frames / model.fps).toFixed(2).replace(/\.?0+$/, "") + " s"; }
  function size(bytes) {
    return bytes >= 1048576 ? (bytes / 1048576).toFixed(1) + " MB" : Math.max(1, Math.round(bytes / 1024)) + " KB";
  }
  function element(tag, className, content) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (content !== undefined) node.textContent = content;
    return node;
  }

  /* ---- the form, set up from the run's facts ---- */
  $("kind").textContent = text ? "text to motion" : "dance (no text)";
  $("run").textContent = info.run_dir + " \u00b7 " + info.checkpoint + " \u00b7 " + info.device + " \u00b7 " +
    plural(model.joints, "joint") + (model.dims === 2 ? " (2D keypoints)" : " (3D, metres)") + " at " + model.fps + " fps";
  if (text) {
    $("prompt").maxLength = limits.max_prompt_chars;
    $("prompt-hint").textContent = "Up to " + limits.max_prompt_chars + " characters. Ctrl+Enter generates.";
    $("guidance_weight").min = limits.min_guidance;
    $("guidance_weight").max = limits.max_guidance;
    $("guidance_weight").value = model.default_guidance;
    $("guidance-hint").textContent = "From " + limits.min_guidance + " to " + limits.max_guidance +
      ": 1 follows the prompt plainly, higher follows it more closely, 0 ignores it.";
    $("empty").textContent = "Type a prompt and press Generate.";
  } else {
    $("prompt-field").hidden = true;
    $("guidance-field").hidden = true;
    $("dance-note").hidden = false;
    $("dance-note").textContent = "This run makes dances without text: press Generate. It draws windows of " +
      model.window + " frames (" + seconds(model.window) + "); a longer length continues sample 0 window by window.";
    $("empty").textContent = "Press Generate.";
  }
  $("num_samples").min = 1;
  $("num_samples").max = limits.max_samples;
  $("num_samples").value = Math.min(text ? 3 : 4, limits.max_samples);
  $("unit").value = "seconds";
  $("length").value = +(model.default_frames / model.fps).toFixed(2);
  Object.keys(model.samplers).forEach(function (name) {
    var option = element("option", "", name);
    option.value = name;
    $("sampler").appendChild(option);
  });
  $("sampler").value = model.default_sampler;
  $("steps").min = 1;
  $("steps").max = model.schedule_steps;

  function lengthHint() {
    var value = parseFloat($("length").value), unit = $("unit").value;
    var frames = unit === "seconds" ? Math.round(value * model.fps) : value;
    var range = "from " + (unit === "seconds" ? seconds(model.min_frames) + " to " + seconds(model.max_frames)
      : model.min_frames + " to " + model.max_frames + " frames");
    var said = isFinite(frames) ? (unit === "seconds" ? frames + " frames" : seconds(frames)) + "; " : "";
    $("length-hint").textContent = said + range + (text ? " (the model's limit)." : " (whole windows).");
    $("length").step = unit === "seconds" ? "any" : "1";
  }
  function samplerHint() {
    var steps = model.samplers[$("sampler").value];
    if (steps === null) {
      $("steps").disabled = true;
      $("steps").value = model.schedule_steps;
      $("steps-hint").textContent = $("sampler").value + " takes every one of the " + model.schedule_steps + " steps.";
    } else {
      $("steps").disabled = false;
      $("steps").value = $("sampler").value === model.default_sampler ? model.default_steps : steps;
      $("steps-hint").textContent = "From 1 to " + model.schedule_steps + " (the schedule's steps); fewer is faster.";
    }
  }
  $("unit").addEventListener("change", function () {
    var value = parseFloat($("length").value);
    if (isFinite(value)) {
      $("length").value = $("unit").value === "frames" ? Math.round(value * model.fps) : +(value / model.fps).toFixed(2);
    }
    lengthHint();
  });
  $("length").addEventListener("input", lengthHint);
  $("sampler").addEventListener("change", samplerHint);
  lengthHint();
  samplerHint();

  /* ---- one request ---- */
  function number(id) {
    var raw = $(id).value.trim();
    return raw === "" ? null : Number(raw);
  }
  function request() {
    var body = {
      length: number("length"),
      unit: $("unit").value,
      sampler: $("sampler").value,
      num_samples: number("num_samples"),
      seed: number("seed"),
    };
    if (!$("steps").disabled) body.steps = number("steps");
    if (text) {
      body.prompt = $("prompt").value;
      body.guidance_weight = number("guidance_weight");
    }
    return body;
  }
  function showError(message) {
    errorBox.textContent = message ? message.charAt(0).toUpperCase() + message.slice(1) : "";
    errorBox.hidden = !message;
  }

  var polling = null;
  function watch(started) {
    polling = window.setInterval(function () {
      var elapsed = Math.round((Date.now() - started) / 1000);
      fetch("/api/status").then(function (r) { return r.json(); }).then(function (s) {
        var queue = s.waiting > 1 ? " \u00b7 " + (s.waiting - 1) + " more waiting: one generation at a time" : "";
        statusLine.textContent = "Generating\u2026 " + elapsed + " s" + queue;
      }).catch(function () { statusLine.textContent = "Generating\u2026 " + elapsed + " s"; });
    }, 500);
  }

  function mountPlayer(payload) {
    var old = window.motiondiffPlayers && window.motiondiffPlayers.player;
    if (old && old.playing) old.pause();
    var holder = $("player");
    var fresh = element("div", "app-player");
    fresh.id = "player";
    holder.parentNode.replaceChild(fresh, holder);
    payload.autoplay = true;
    return window.MotionPlayer.mount(fresh, payload);
  }

  function showResult(result) {
    mountPlayer(result.player);
    var r = result.request, parts = [
      "Generation " + result.name + ": " + plural(r.num_samples, "sample") + " of " + result.frames + " frames (" +
        seconds(result.frames) + ")",
      r.sampler + (r.steps ? " " + r.steps + " steps" : ""),
      "seed " + r.seed,
    ];
    if (r.guidance_weight !== null) parts.push("guidance " + r.guidance_weight);
    parts.push("took " + result.took_s.toFixed(1) + " s" + (result.waited_s >= 0.5 ? " after waiting " + result.waited_s.toFixed(1) + " s" : ""));
    $("summary").textContent = parts.join(" \u00b7 ") + ". Saved in " + result.folder;
    var notes = $("notes");
    notes.textContent = "";
    result.warnings.concat(result.notes).forEach(function (note) { notes.appendChild(element("li", "", note)); });
    var list = $("downloads");
    list.textContent = "";
    result.downloads.forEach(function (file) {
      var item = element("li"), link = element("a", "", file.name);
      link.href = file.url;
      link.setAttribute("download", result.name + "_" + file.name.split("/").pop());
      item.appendChild(link);
      item.appendChild(element("span", "app-what", " " + size(file.bytes) + (file.what ? " \u00b7 " + file.what : "")));
      list.appendChild(item);
    });
    $("details").hidden = false;
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (button.disabled) return;
    showError("");
    button.disabled = true;
    var started = Date.now();
    statusLine.textContent = "Generating\u2026";
    watch(started);
    fetch("/api/generate", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(request()),
    })
      .then(function (response) {
        return response.json().then(function (data) { return { ok: response.ok, data: data }; });
      })
      .then(function (answer) {
        if (!answer.ok) throw new Error(answer.data.error || "the app refused the request.");
        showResult(answer.data);
        statusLine.textContent = "Done in " + ((Date.now() - started) / 1000).toFixed(1) + " s.";
      })
      .catch(function (error) {
        statusLine.textContent = "";
        showError(error.message === "Failed to fetch" ? "The app does not answer: is it still running?" : error.message);
      })
      .finally(function () {
        window.clearInterval(polling);
        button.disabled = false;
      });
  });
  $("prompt").addEventListener("keydown", function (event) {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit();
  });
})();
