#!/bin/bash
# Sourced by scripts that set up a private apt configuration: the system's
# own Debian mirror, read from its apt sources, so the scripts name none and
# work on whichever mirror the machine uses.
#
#   debian_mirror           the archive's base URI, e.g. http://host/debian
#   debian_security_mirror  the security archive's base URI

# URIs of the deb822 .sources stanzas (and one-line sources.list entries)
# whose suites match the pattern $1 (an extended regex), first one wins.
_apt_uri_for_suite() {
	local want=$1 f
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -r "$f" ] || continue
		awk -v want="$want" '
			/^[[:space:]]*$/ { if (uri && suites ~ want) { print uri; exit } uri = ""; suites = ""; next }
			/^URIs:/ { uri = $2 }
			/^Suites:/ { $1 = ""; suites = $0 }
			END { if (uri && suites ~ want) print uri }' "$f"
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -r "$f" ] || continue
		# "deb [options] URI suite components": drop the options first.
		sed -E 's/\[[^]]*\]//' "$f" | awk -v want="$want" '$1 == "deb" && $3 ~ want { print $2; exit }' 
	done
}

debian_mirror() {
	local uri
	uri=$(_apt_uri_for_suite '(^| )(bookworm|trixie|stable|testing)( |$)' | head -1)
	[ -n "$uri" ] || { echo "apt-mirror: no Debian mirror in the system's apt sources" >&2; return 1; }
	echo "${uri%/}"
}

debian_security_mirror() {
	local uri
	uri=$(_apt_uri_for_suite -security | head -1)
	[ -n "$uri" ] || { echo "apt-mirror: no Debian security mirror in the system's apt sources" >&2; return 1; }
	echo "${uri%/}"
}
