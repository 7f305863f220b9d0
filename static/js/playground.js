/* The chat playground (templates/partials/playground.html): streams a language model's
   reply token by token through the web's relay (POST /api/v1/playground/...), which
   passes the worker's OpenAI server-sent events on as they come.

   The conversation lives in the page (the turns in .pg-log): each chat request sends
   every finished turn, so the model sees the whole conversation through its chat
   template. A version without a chat template gets a plain completion of the text.
   Stop aborts the fetch: the relay hangs up on the worker, which stops generating.
   Listeners sit on the document, so cards that htmx swaps in work without rebinding. */
(function () {
  "use strict";

  var running = new WeakMap(); // playground element -> AbortController

  function csrfToken() {
    try {
      var headers = JSON.parse(document.body.getAttribute("hx-headers") || "{}");
      if (headers["X-CSRFToken"]) return headers["X-CSRFToken"];
    } catch (e) { /* fall through to the cookie */ }
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  function part(box, name) { return box.querySelector(".pg-" + name); }

  function addTurn(box, role, text) {
    var li = document.createElement("li");
    li.className = "pg-turn pg-" + role;
    li.dataset.role = role;
    var who = document.createElement("span");
    who.className = "pg-who";
    who.textContent = role === "user" ? "you" : "model";
    var body = document.createElement("span");
    body.className = "pg-text";
    body.textContent = text;
    li.appendChild(who);
    li.appendChild(body);
    part(box, "log").appendChild(li);
    return li;
  }

  /* Every finished turn, oldest first: what the chat template gets. */
  function conversation(box) {
    var turns = box.querySelectorAll(".pg-log > li.pg-turn:not(.pg-failed)");
    return Array.prototype.map.call(turns, function (li) {
      return { role: li.dataset.role, content: li.querySelector(".pg-text").textContent };
    });
  }

  function setBusy(box, busy) {
    part(box, "send").disabled = busy;
    part(box, "stop").disabled = !busy;
    part(box, "clear").disabled = busy;
    box.classList.toggle("pg-busy", busy);
  }

  function showError(box, text) {
    var error = part(box, "error");
    error.textContent = text;
    error.hidden = !text;
  }

  function showStats(box, stats, now) {
    if (stats.first !== null) {
      part(box, "ttft").textContent = Math.round(stats.first - stats.started) + " ms";
    }
    part(box, "tokens").textContent = String(stats.tokens);
    // Decoding speed: the tokens after the first over the time since the first, as
    // Ollama's eval rate (the first token's wait is the time to first token).
    var seconds = stats.first === null ? 0 : (now - stats.first) / 1000;
    if (stats.tokens > 1 && seconds > 0) {
      part(box, "rate").textContent = ((stats.tokens - 1) / seconds).toFixed(1);
    }
  }

  /* Split a server-sent-events buffer into complete events; returns the rest. */
  function drainEvents(buffer, onData) {
    var cut;
    buffer = buffer.replace(/\r\n/g, "\n");
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      var event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      event.split("\n").forEach(function (line) {
        if (line.indexOf("data:") === 0) onData(line.slice(5).trim());
      });
    }
    return buffer;
  }

  async function errorDetail(response) {
    try {
      var body = await response.json();
      return body.detail || (body.error && body.error.message) || response.statusText;
    } catch (e) {
      return response.statusText || "HTTP " + response.status;
    }
  }

  async function send(box) {
    if (running.has(box)) return;
    var input = part(box, "input");
    var text = input.value.trim();
    if (!text) return;
    var chat = box.dataset.mode === "chat";
    var maxTokens = parseInt(part(box, "max").value, 10) || 128;
    var temperature = parseFloat(part(box, "temperature").value);
    if (isNaN(temperature)) temperature = 0.7;
    showError(box, "");
    var user = addTurn(box, "user", text);
    input.value = "";
    var body = { model: box.dataset.model, max_tokens: maxTokens, temperature: temperature, stream: true };
    if (chat) body.messages = conversation(box);
    else body.prompt = text;
    var reply = addTurn(box, "assistant", "");
    reply.classList.add("pg-streaming", "pg-failed"); // not part of the conversation yet
    var textEl = reply.querySelector(".pg-text");
    var controller = new AbortController();
    running.set(box, controller);
    setBusy(box, true);
    part(box, "finish").textContent = "";
    part(box, "ttft").textContent = "…";
    part(box, "rate").textContent = "–";
    var stats = { started: performance.now(), first: null, tokens: 0 };
    var finish = null;
    try {
      var response = await fetch(chat ? box.dataset.chatUrl : box.dataset.completionUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
        body: JSON.stringify(body),
        signal: controller.signal,
      });
      if (!response.ok) throw new Error(response.status + ": " + (await errorDetail(response)));
      var reader = response.body.getReader();
      var decoder = new TextDecoder();
      var buffer = "";
      var onData = function (data) {
        if (data === "[DONE]") return;
        var chunk = JSON.parse(data);
        var choice = (chunk.choices || [])[0] || {};
        var piece = chat ? (choice.delta || {}).content : choice.text;
        if (piece) {
          if (stats.first === null) stats.first = performance.now();
          stats.tokens += 1;
          textEl.textContent += piece;
        }
        if (choice.finish_reason) finish = choice.finish_reason;
        if (chunk.usage) stats.tokens = chunk.usage.completion_tokens;
      };
      for (;;) {
        var step = await reader.read();
        if (step.done) break;
        buffer = drainEvents(buffer + decoder.decode(step.value, { stream: true }), onData);
        showStats(box, stats, performance.now());
      }
      reply.classList.remove("pg-failed");
      part(box, "finish").textContent = finish === "length" ? " · stopped at max tokens"
        : finish === "stop" ? " · finished" : "";
    } catch (err) {
      if (err.name === "AbortError") {
        reply.classList.remove("pg-failed");
        part(box, "finish").textContent = " · stopped by you";
      } else {
        showError(box, "The model did not answer: " + err.message);
        user.classList.add("pg-failed");
        if (!textEl.textContent) reply.remove();
      }
    } finally {
      reply.classList.remove("pg-streaming");
      showStats(box, stats, performance.now());
      running.delete(box);
      setBusy(box, false);
    }
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest(".pg-send, .pg-stop, .pg-clear");
    if (!button) return;
    var box = button.closest("[data-playground]");
    if (!box) return;
    event.preventDefault();
    if (button.classList.contains("pg-send")) {
      send(box);
    } else if (button.classList.contains("pg-stop")) {
      var controller = running.get(box);
      if (controller) controller.abort();
    } else {
      part(box, "log").textContent = "";
      showError(box, "");
    }
  });

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Enter" || event.shiftKey || event.isComposing) return;
    // Also in the number fields: on /settings the box sits inside the switch form, whose
    // implicit submission on Enter would apply the slot changes instead.
    if (!event.target.matches || !event.target.matches("[data-playground] .pg-input, [data-playground] input")) return;
    event.preventDefault();
    send(event.target.closest("[data-playground]"));
  });
})();
