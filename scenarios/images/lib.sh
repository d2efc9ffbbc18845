# Shared helpers for the image recipes. Sourced, not run.
# Everything comes from Debian packages; nothing is mounted, no loop devices.

step() { echo "step: $*"; }
die() { echo "error: $*" >&2; exit 1; }

# fetch_debs DIR PKG... : downloads the packages' .debs into DIR.
fetch_debs() {
    local dir=$1; shift
    mkdir -p "$dir"
    (cd "$dir" && apt-get download "$@" >&2) || die "apt-get download $* failed (run apt-get update?)"
}

# fetch_kernel DIR FLAVOUR : downloads and unpacks linux-image-FLAVOUR
# (resolving the meta package to the real one) into DIR/root; prints the
# kernel release.
fetch_kernel() {
    local dir=$1 flavour=$2 meta real
    fetch_debs "$dir" "linux-image-$flavour"
    meta=$(ls "$dir"/linux-image-"$flavour"_*.deb | head -n1)
    real=$(dpkg-deb -f "$meta" Depends | grep -o 'linux-image-[0-9][^ ,]*' | head -n1)
    [ -n "$real" ] || die "cannot resolve the kernel package behind linux-image-$flavour"
    fetch_debs "$dir" "$real"
    dpkg-deb -x "$(ls "$dir"/"$real"_*.deb | head -n1)" "$dir/root"
    ls "$dir/root/lib/modules" | head -n1
}

# module_deps FILE.ko : prints the module names FILE depends on.
module_deps() {
    tr '\0' '\n' < "$1" | sed -n 's/^depends=//p' | tr ',' '\n' | sed '/^$/d'
}

# module_order MODDIR NAME... : prints module files in load order
# (dependencies first, each once).
module_order() {
    local moddir=$1; shift
    local -A seen=()
    _visit() {
        local name=$1 file dep
        [ -n "${seen[$name]:-}" ] && return 0
        seen[$name]=1
        file=$(find "$moddir" \( -name "$name.ko" -o -name "${name//_/-}.ko" \) | head -n1)
        if [ -z "$file" ]; then
            # Built in (or absent): nothing to load.
            return 0
        fi
        for dep in $(module_deps "$file"); do _visit "${dep//-/_}"; done
        echo "$file"
    }
    for m in "$@"; do _visit "$m"; done
}
