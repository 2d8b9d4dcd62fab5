# SPDX-License-Identifier: LGPL-2.1-or-later
# bash completion for snapctl (installed as
# share/bash-completion/completions/snapctl).

_snapctl_keys()
{
    # Snapshot keys of the root on the command line (or the default one);
    # only when that root exists, so completing never creates it.
    local root=/var/lib/loopsnap i
    for ((i = 1; i < ${#COMP_WORDS[@]} - 1; i++)); do
        if [[ ${COMP_WORDS[i]} == --root ]]; then
            root=${COMP_WORDS[i + 1]}
        elif [[ ${COMP_WORDS[i]} == --root=* ]]; then
            root=${COMP_WORDS[i]#--root=}
        fi
    done
    [[ -d $root ]] || return 0
    "${COMP_WORDS[0]}" --root "$root" ls 2>/dev/null | awk 'NR > 1 { print $1 }'
}

_snapctl()
{
    local cur prev words cword
    _init_completion || return

    local commands="prepare view commit rm info ls tree label usage mounts mount umount
        apply import cleanup fsck doctor loops oci-config help"
    local global="--root --layout --writable-fs --writable-size --committed-format
        --upper-dir --writable-pool --json --verbose --help --version"

    case $prev in
    --root)
        _filedir -d
        return
        ;;
    --layout)
        COMPREPLY=($(compgen -W "overlay block" -- "$cur"))
        return
        ;;
    --writable-fs)
        COMPREPLY=($(compgen -W "ext4 xfs" -- "$cur"))
        return
        ;;
    --committed-format)
        COMPREPLY=($(compgen -W "ext4 erofs" -- "$cur"))
        return
        ;;
    --writable-size | --label)
        return
        ;;
    --parent)
        COMPREPLY=($(compgen -W "$(_snapctl_keys)" -- "$cur"))
        return
        ;;
    esac

    # The command: the first word that is neither an option nor its value.
    local cmd="" i npos=0
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
        --root | --layout | --writable-fs | --writable-size | --committed-format | --label | --parent | --key | --size | --hook)
            ((i++))
            ;;
        -*) ;;
        *)
            if [[ -z $cmd ]]; then
                cmd=${words[i]}
            else
                ((npos++))
            fi
            ;;
        esac
    done

    if [[ -z $cmd ]]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "$global" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$commands" -- "$cur"))
        fi
        return
    fi

    local opts=""
    case $cmd in
    prepare | view | commit) opts="--label" ;;
    fsck) opts="--repair" ;;
    umount | loops) opts="--all" ;;
    oci-config) opts="--parent --key --keep --size --hook" ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts $global" -- "$cur"))
        return
    fi

    case $cmd in
    help)
        ((npos == 0)) && COMPREPLY=($(compgen -W "$commands" -- "$cur"))
        ;;
    prepare | view | rm | info | label | usage | mounts)
        COMPREPLY=($(compgen -W "$(_snapctl_keys)" -- "$cur"))
        ;;
    commit)
        ((npos == 1)) && COMPREPLY=($(compgen -W "$(_snapctl_keys)" -- "$cur"))
        ;;
    mount)
        if ((npos == 0)); then
            COMPREPLY=($(compgen -W "$(_snapctl_keys)" -- "$cur"))
        else
            _filedir -d
        fi
        ;;
    umount | import | oci-config)
        _filedir -d
        ;;
    apply)
        if ((npos == 0)); then
            COMPREPLY=($(compgen -W "$(_snapctl_keys)" -- "$cur"))
        else
            _filedir '@(tar|tar.gz|tgz|tar.zst)'
        fi
        ;;
    esac
} && complete -F _snapctl snapctl
