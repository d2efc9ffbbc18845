# Shared helpers for the image recipes. Sourced, not run.
# Everything comes from Debian packages; nothing is mounted, no loop devices.

step() { echo "step: $*"; }
die() { echo "error: $*" >&2; exit 1; }

# Any failing command (set -e) names itself on stderr before the recipe exits.
trap 'echo "error: $0:$LINENO: \`${BASH_COMMAND:0:100}\` failed (exit $?)" >&2' ERR

# fetch_debs DIR PKG... : downloads the packages' .debs into DIR.
fetch_debs() {
    local dir=$1; shift
    mkdir -p "$dir"
    # Sandbox::User=root: root-owned scratch dirs are not readable by _apt.
    (cd "$dir" && apt-get download -q -o APT::Sandbox::User=root "$@" >&2) ||
        die "apt-get download $* failed (stale package lists? run apt-get update)"
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

# The kernel package ships no modules.dep (depmod makes it at install time,
# and kmod is not on the host), so dependencies are read from each module's
# .modinfo section (`depends=`), which is what depmod reads too.
# Modules may be plain .ko or compressed (.ko.xz / .ko.zst / .ko.gz).

# module_file MODDIR NAME : prints the module's file, if it is one.
module_file() {
    local re=${2//[-_]/[-_]}   # foo_bar matches foo_bar.ko and foo-bar.ko
    find "$1/kernel" -regextype posix-extended \
        -regex ".*/$re\.ko(\.(xz|zst|gz))?" -print -quit
}

# module_builtin MODDIR NAME : true if the module is built into the kernel.
module_builtin() {
    local re=${2//[-_]/[-_]}
    grep -qE "/$re\.ko\$" "$1/modules.builtin"
}

# module_cat FILE : the module, decompressed, on stdout.
module_cat() {
    case $1 in
        *.ko.xz) xz -dc "$1" ;;
        *.ko.zst) zstd -dcq "$1" ;;
        *.ko.gz) gzip -dc "$1" ;;
        *) cat "$1" ;;
    esac
}

# module_deps FILE : prints the names of the modules FILE depends on.
module_deps() {
    module_cat "$1" | tr '\0' '\n' | sed -n 's/^depends=//p' | tr ',' '\n' | sed '/^$/d'
}

# module_order MODDIR NAME... : prints module files in load order
# (dependencies first, each once). Built-in modules are skipped; a module
# that is neither built in nor shipped is an error.
module_order() {
    local moddir=$1; shift
    local -A seen=()
    _visit() {
        local name=${1//-/_} file dep
        [ -n "${seen[$name]:-}" ] && return 0
        seen[$name]=1
        if module_builtin "$moddir" "$name"; then
            echo "module $name: built in" >&2
            return 0
        fi
        file=$(module_file "$moddir" "$name")
        [ -n "$file" ] || die "kernel module $name: neither built in nor in $moddir"
        for dep in $(module_deps "$file"); do _visit "$dep"; done
        echo "$file"
    }
    for m in "$@"; do _visit "$m"; done
}
