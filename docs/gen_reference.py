"""mkdocs-gen-files script: writes the reference pages generated from the code
(`gateway.reference`) into the site at build time; nothing is written into `docs/`."""

import mkdocs_gen_files

from gateway.reference.pages import pages

for path, text in pages().items():
    with mkdocs_gen_files.open(path, "w") as page:
        page.write(text)
