# What the HTML report's browser tests and `metrictree graph --format svg|png` need, from Debian's packages:
# headless Chromium, Graphviz's `dot`, and a font. Installed only when missing, so a second run does nothing.
ci_apt_install chromium graphviz fonts-dejavu-core
