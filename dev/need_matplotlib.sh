#!/usr/bin/env bash
# The experiment and figure scripts need numpy and matplotlib for /usr/bin/python3 (Debian's
# python3-numpy and python3-matplotlib). As root, install them; otherwise say how.
py=${1:-/usr/bin/python3}
"$py" -c 'import numpy, matplotlib' 2>/dev/null && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "installing python3-numpy python3-matplotlib" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y python3-numpy python3-matplotlib </dev/null >/dev/null ||
    { apt-get update </dev/null >/dev/null && apt-get install -y python3-numpy python3-matplotlib </dev/null >/dev/null; }
  "$py" -c 'import numpy, matplotlib' 2>/dev/null && exit 0
fi
echo "error: $py cannot import numpy and matplotlib; install them: sudo apt-get install python3-numpy python3-matplotlib" >&2
exit 1
