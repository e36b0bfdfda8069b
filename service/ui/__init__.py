"""The web UI: a face of the API for people who are not operators.

One HTML page and the ES modules, styles and icon it loads, all from this package (no
CDN, no build step: air-gapped hubs get the same UI). Every view calls ``/api/v1`` with
the browser's login cookie and the CSRF token, so the UI can do nothing the API would
not let the user do. ``routes`` serves the page, the assets and the login form.
"""
