"""`coral serve`: the web dashboard (FastAPI, server-rendered HTML and inline SVG charts).

Every asset is in the package (`static/`): nothing is loaded from a CDN, the pages work offline.
`coral.web.app.create_app` builds the application (it imports FastAPI: only `coral serve` and
the tests import it); `coral.web.access` and `coral.web.links` hold what `coral share` needs
and import nothing heavy.
"""
