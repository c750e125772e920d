/* Calls to the server's JSON API, under the prefix (`/t/<token>`, a proxy's root path) the page came with. */

export const base = document.body.dataset.base || "";

export function api(path, options) {
  return fetch(base + path, Object.assign({ headers: { Accept: "application/json" }, credentials: "same-origin" }, options || {}))
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

export function actionError(error, what) {
  return error.status === 401 ? ADMIN_NEEDED : what + ": " + error.message;
}

