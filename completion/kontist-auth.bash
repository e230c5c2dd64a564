# bash completion for kontist-auth and git-credential-kontist

_kontist_auth()
{
    local cur prev words cword
    _init_completion || return

    local commands="login device token status logout credential doctor"
    local cmd="" i
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
            --config) ((i++)) ;;
            -*) ;;
            *) cmd=${words[i]}; break ;;
        esac
    done

    case $prev in
        --config | --sshd-config | --key | --sshd)
            _filedir
            return
            ;;
        --pam-dir)
            _filedir -d
            return
            ;;
        --mfa)
            COMPREPLY=($(compgen -W 'device push device,push push,device none' -- "$cur"))
            return
            ;;
    esac

    case $cmd in
        "")
            if [[ $cur == -* ]]; then
                COMPREPLY=($(compgen -W '--config --help --version' -- "$cur"))
            else
                COMPREPLY=($(compgen -W "$commands" -- "$cur"))
            fi
            ;;
        device)
            # The subcommand: the first word after "device" that is not an option.
            local sub=""
            for ((i = i + 1; i < cword; i++)); do
                case ${words[i]} in
                    --config) ((i++)) ;;
                    -*) ;;
                    *) sub=${words[i]}; break ;;
                esac
            done
            if [[ -z $sub ]]; then
                if [[ $cur == -* ]]; then
                    COMPREPLY=($(compgen -W '--help' -- "$cur"))
                else
                    COMPREPLY=($(compgen -W 'enroll list remove' -- "$cur"))
                fi
            elif [[ $cur == -* ]]; then
                COMPREPLY=($(compgen -W '$(_parse_help "$1" "device $sub --help")' -- "$cur"))
            fi
            ;;
        credential)
            COMPREPLY=($(compgen -W 'get store erase' -- "$cur"))
            ;;
        *)
            if [[ $cur == -* ]]; then
                COMPREPLY=($(compgen -W '$(_parse_help "$1" "$cmd --help")' -- "$cur"))
            fi
            ;;
    esac
} && complete -F _kontist_auth kontist-auth

_git_credential_kontist()
{
    local cur prev words cword
    _init_completion || return
    if [[ $prev == --config ]]; then
        _filedir
    elif [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W '--config --help' -- "$cur"))
    else
        COMPREPLY=($(compgen -W 'get store erase' -- "$cur"))
    fi
} && complete -F _git_credential_kontist git-credential-kontist
