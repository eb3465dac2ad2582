"""Build the SDK's two files from src/nextbest.js, with no tool but Python:

    python web/sdk/build.py            # writes dist/ (what `make sdk` runs)
    python web/sdk/build.py --check    # exit 1 if dist/ is not what the source builds

- dist/nextbest.mjs: an ES module (`import { init } from "./nextbest.mjs"`, or the default
  export `Nextbest`);
- dist/nextbest.js: a classic script that defines `window.Nextbest` (`<script src>`);
- dist/nextbest.d.ts: the TypeScript types (src/nextbest.d.ts, as written).

The source is plain ES5 with top-level declarations, so each build is the source wrapped:
the module exports them, the script keeps them in a function scope. The version comes from
package.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def builds() -> dict[str, str]:
    version = json.loads((HERE / "package.json").read_text())["version"]
    source = (HERE / "src" / "nextbest.js").read_text()
    marker = 'var VERSION = "0.0.0";'
    if marker not in source:
        raise SystemExit(f"src/nextbest.js lacks the line {marker!r}")
    source = source.replace(marker, f"var VERSION = {json.dumps(version)};")
    banner = f"/* nextbest SDK {version}: built from src/nextbest.js by build.py; do not edit */\n"
    module = (
        banner
        + source
        + "\nvar Nextbest = { init: init, Client: Client, version: VERSION };\n"
        + "export { init, Client, VERSION as version };\nexport default Nextbest;\n"
    )
    classic = (
        banner
        + "(function () {\n\"use strict\";\n"
        + source
        + "\nglobalThis.Nextbest = { init: init, Client: Client, version: VERSION };\n})();\n"
    )
    return {
        "nextbest.mjs": module,
        "nextbest.js": classic,
        "nextbest.d.ts": (HERE / "src" / "nextbest.d.ts").read_text(),
    }


def main() -> None:
    check = "--check" in sys.argv[1:]
    stale = []
    for name, text in builds().items():
        path = HERE / "dist" / name
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
        else:
            path.parent.mkdir(exist_ok=True)
            path.write_text(text)
    if stale:
        raise SystemExit(f"web/sdk/dist is stale ({', '.join(stale)}): run `make sdk`")


if __name__ == "__main__":
    main()
