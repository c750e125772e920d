/* Calls to the server's JSON API, under the prefix (`/t/<token>`, a proxy's root path) the page came with. */

export const base = document.body.dataset.base || "";

const csrfMeta = document.querySelector('meta[name="csrf-token"]');
/* The signed-in session's CSRF token: the server refuses a change made with the cookie without it. */
export const csrfToken = csrfMeta ? csrfMeta.getAttribute("content") : "";

export function api(path, options) {
  var settings = Object.assign({ headers: { Accept: "application/json" }, credentials: "same-origin" }, options || {});
  var method = (settings.method || "GET").toUpperCase();
  if (csrfToken && method !== "GET" && method !== "HEAD") {
    settings.headers = Object.assign({}, settings.headers, { "X-CSRF-Token": csrfToken });
  }
  return fetch(base + path, settings)
    .then(function (response) {
      if (!response.ok) {
        return response.json().catch(function () { return {}; }).then(function (body) {
          var error = new Error(body.error || response.status + " " + response.statusText);
          error.status = response.status;
          throw error;
        });
      }
      return response.json();
    });
}

export function postJson(path, body, method) {
  return api(path, {
    method: method || "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body)
  });
}

export const ADMIN_NEEDED = "An admin token is required: open the dashboard under /t/<admin token>/.";

export const ROLE_REFUSED = "Not allowed: your account may only look; changes need an admin.";

export function actionError(error, what) {
  if (error.status === 403) return ROLE_REFUSED;
  return error.status === 401 ? ADMIN_NEEDED : what + ": " + error.message;
}

