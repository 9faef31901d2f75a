"""`tunelm.search`, `tunelm.recommend`, `tunelm.diagnose` and `tunelm.evaluate` are both API
functions and modules: the functions must stay callable once the modules are imported (a first
`tunelm.search(...)` imports tunelm.search, which used to hide the function from the second)."""

import subprocess
import sys

CHECK = """
import tunelm
import tunelm.diagnose.load, tunelm.evaluate, tunelm.recommend.rules, tunelm.search.study
from tunelm.search import run_search  # the package's own names still import
assert tunelm.search.study.__name__ == "tunelm.search.study"
for name in ("search", "recommend", "diagnose", "evaluate"):
    assert callable(getattr(tunelm, name)), name
try:
    tunelm.diagnose("no-such-run")
except tunelm.diagnose.load.DiagnoseInputError as e:
    print("routed:", type(e).__name__)
"""


def test_the_api_functions_stay_callable_after_their_modules_are_imported():
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "routed: DiagnoseInputError" in out.stdout

