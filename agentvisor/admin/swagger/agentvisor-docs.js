// The /docs page: Swagger UI over /openapi.json, every asset served by agentvisor itself.
// When agentvisor has an admin token, the document needs it too: the page asks for it
// once, keeps it for this tab only (sessionStorage) and sends it with every request.
"use strict";
(function () {
  const KEY = "agentvisor.token";
  const SPEC = "openapi.json";  // relative: works behind a proxy that adds a path prefix
  const form = document.getElementById("token-form");
  const refused = document.getElementById("token-error");

  function token() {
    return sessionStorage.getItem(KEY) || "";
  }

  function withToken(request) {
    const value = token();
    if (value && !request.headers.Authorization) {
      request.headers.Authorization = "Bearer " + value;
    }
    return request;
  }

  function show() {
    window.ui = SwaggerUIBundle({
      url: SPEC,
      dom_id: "#swagger-ui",
      deepLinking: true,
      validatorUrl: null,  // never call the public validator: the page stays offline
      requestInterceptor: withToken,
      presets: [SwaggerUIBundle.presets.apis],
      layout: "BaseLayout",
    });
  }

  async function load() {
    const headers = token() ? { Authorization: "Bearer " + token() } : {};
    const response = await fetch(SPEC, { headers: headers });
    if (response.status === 401) {
      refused.hidden = !token();
      form.hidden = false;
      return;
    }
    form.hidden = true;
    show();
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    sessionStorage.setItem(KEY, form.elements.token.value);
    load();
  });
  load();
})();
