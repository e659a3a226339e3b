# NixOS module: a rumor-provisioned device.
#
# Decrypts the device's secrets/<id>.yaml at boot with sops-nix, using the
# age key that `rumor inject` wrote into the image (keyFile), and wires
# every decrypted file into the service that needs it: PostgreSQL (initial
# script, TLS), Nebula, NetworkManager Wi-Fi, the admin user's password and
# SSH keys, and the pidgeon meter daemon.
#
# Needs sops-nix's module imported alongside (the flake's
# nixosModules.default does both).
#
# pidgeon runs through its own NixOS module (services.pidgeon: enable,
# envPath, configPath, debug), imported alongside as nix/image.nix does;
# this module only feeds it. A pidgeon package that ships no module gets
# rumor's fallback unit instead (pidgeon.useModule = false).
{ config, lib, options, ... }:
let
  cfg = config.services.rumor-device;

  # Whether pidgeon's own module is imported. Read from the declared
  # options, not from config, so services.pidgeon is defined only where it
  # exists (a definition of an undeclared option fails even under mkIf).
  pidgeonModule = options ? services && options.services ? pidgeon;
  useModule = cfg.enable && cfg.pidgeon.useModule;

  secrets = import ./secrets.nix {
    device = cfg.deviceFile;
    inherit (cfg) adminUser nebulaNetwork;
    pidgeonUser = "pidgeon";
  };

  path = name: config.sops.secrets.${name}.path;
in
{
  options.services.rumor-device = {
    enable = lib.mkEnableOption "secrets provisioned by rumor for this device";

    device = lib.mkOption {
      type = lib.types.strMatching "[a-z0-9][a-z0-9-]*";
      example = "pidgeon-1";
      description = "The device id: devices/<id>.toml and secrets/<id>.yaml.";
    };

    deviceFile = lib.mkOption {
      type = lib.types.path;
      description = "The device's devices/<id>.toml (display name, Nebula IP, groups, vars).";
    };

    secretsFile = lib.mkOption {
      type = lib.types.path;
      description = "The device's SOPS file, secrets/<id>.yaml, as written by `rumor`.";
    };

    keyFile = lib.mkOption {
      type = lib.types.str;
      default = "/root/host.scrt.key";
      description = ''
        The age identity inside the image, written by `rumor inject`
        (rumor.toml [image] key_path). Never in the Nix store.
      '';
    };

    adminUser = lib.mkOption {
      type = lib.types.str;
      default = "admin";
      description = "The login user whose password hash (user.hash) and SSH keys (user.authorized_keys) the SOPS file carries.";
    };

    nebulaNetwork = lib.mkOption {
      type = lib.types.str;
      default = "rumor";
      description = "The services.nebula.networks.<name> the device joins.";
    };

    nebula = {
      lighthouses = lib.mkOption {
        type = lib.types.listOf lib.types.str;
        default = [ ];
        description = "Nebula overlay IPs of the lighthouses.";
      };
      staticHostMap = lib.mkOption {
        type = lib.types.attrsOf (lib.types.listOf lib.types.str);
        default = { };
        description = "Overlay IP to public host:port of the lighthouses.";
      };
    };

    pidgeon = {
      useModule = lib.mkOption {
        type = lib.types.bool;
        default = true;
        description = ''
          Run pidgeon through its own NixOS module (services.pidgeon, which
          must be imported). false runs rumor's fallback unit instead, for a
          pidgeon package that ships no module.
        '';
      };

      package = lib.mkOption {
        type = lib.types.nullOr lib.types.package;
        default = null;
        description = "The pidgeon package for the fallback unit (useModule = false); null runs no fallback daemon (pidgeon.env is still decrypted).";
      };

      configPath = lib.mkOption {
        type = lib.types.str;
        default = "";
        example = "/etc/pidgeon/config.toml";
        description = "pidgeon's config file (services.pidgeon.configPath); empty for none.";
      };

      debug = lib.mkOption {
        type = lib.types.bool;
        default = false;
        description = "pidgeon logs at DEBUG (services.pidgeon.debug).";
      };
    };
  };

  config = lib.mkMerge [ (lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = !cfg.pidgeon.useModule || pidgeonModule;
        message = "rumor: services.rumor-device.pidgeon.useModule needs pidgeon's NixOS module (services.pidgeon) imported; import it, or set useModule = false for the fallback unit";
      }
    ];

    networking.hostName = lib.mkDefault cfg.device;

    sops = {
      defaultSopsFile = cfg.secretsFile;
      defaultSopsFormat = "yaml";
      # The injected key only: no key is generated on the device and no
      # SSH host key doubles as an age identity.
      age.keyFile = cfg.keyFile;
      age.generateKey = false;
      age.sshKeyPaths = [ ];
      gnupg.sshKeyPaths = [ ];
      secrets = secrets;
    };

    services.postgresql = {
      enable = true;
      enableTCPIP = true;
      # A runtime path (a string), so the SQL never enters the store.
      initialScript = path "postgres.sql";
      settings = {
        ssl = true;
        ssl_cert_file = path "postgres.crt";
        ssl_key_file = path "postgres.key";
        ssl_ca_file = path "postgres.ca.crt";
      };
    };

    services.nebula.networks.${cfg.nebulaNetwork} = {
      enable = true;
      ca = path "nebula.ca.crt";
      cert = path "nebula.crt";
      key = path "nebula.key";
      inherit (cfg.nebula) lighthouses staticHostMap;
    };

    # wifi.env holds WIFI_SSID and WIFI_PSK; ensureProfiles substitutes
    # them at activation, so the passphrase stays out of the store.
    networking.networkmanager = {
      enable = true;
      ensureProfiles.environmentFiles = [ (path "wifi.env") ];
      ensureProfiles.profiles.rumor-wifi = {
        connection = {
          id = "rumor-wifi";
          type = "wifi";
          autoconnect = true;
        };
        wifi = {
          mode = "infrastructure";
          ssid = "$WIFI_SSID";
        };
        wifi-security = {
          key-mgmt = "wpa-psk";
          psk = "$WIFI_PSK";
        };
        ipv4.method = "auto";
        ipv6.method = "auto";
      };
    };

    users.mutableUsers = false;
    users.users.${cfg.adminUser} = {
      isNormalUser = true;
      extraGroups = [ "wheel" "networkmanager" ];
      hashedPasswordFile = path "user.hash";
      # user.authorized_keys is decrypted to /etc/ssh/authorized_keys.d/<user>,
      # which NixOS's sshd reads (see secrets.nix).
    };
    services.openssh = {
      enable = true;
      settings.PasswordAuthentication = false;
      settings.PermitRootLogin = "no";
    };

    # pidgeon's own module declares the same user; the definitions merge.
    # dialout: the meters' Modbus RTU serial line (/dev/ttyUSB*, /dev/ttyAMA*).
    users.users.pidgeon = {
      isSystemUser = true;
      group = "pidgeon";
      extraGroups = [ "dialout" ];
    };
    users.groups.pidgeon = { };

    # The unit is pidgeon's (or the fallback's); either way it starts once
    # its database and overlay network are up.
    systemd.services.pidgeon = lib.mkIf (useModule || cfg.pidgeon.package != null) {
      after = [ "network-online.target" "postgresql.service" "nebula@${cfg.nebulaNetwork}.service" ];
      wants = [ "network-online.target" ];
      requires = [ "postgresql.service" ];
    };
  })

  # pidgeon's module runs the daemon: EnvironmentFile = envPath, as the
  # pidgeon user, `pidgeon-cli [--debug] --config <configPath>`.
  (lib.optionalAttrs pidgeonModule {
    services.pidgeon = lib.mkIf useModule {
      enable = true;
      envPath = path "pidgeon.env";
      inherit (cfg.pidgeon) configPath debug;
    };
  })

  # The fallback, for a package without a module: the same command line.
  (lib.mkIf (cfg.enable && !cfg.pidgeon.useModule && cfg.pidgeon.package != null) {
    systemd.services.pidgeon = {
      description = "pidgeon meter daemon";
      wantedBy = [ "multi-user.target" ];
      serviceConfig = {
        ExecStart = lib.concatStringsSep " " (
          [ (lib.getExe cfg.pidgeon.package) ]
          ++ lib.optional cfg.pidgeon.debug "--debug"
          ++ lib.optionals (cfg.pidgeon.configPath != "") [ "--config" cfg.pidgeon.configPath ]
        );
        EnvironmentFile = path "pidgeon.env";
        User = "pidgeon";
        Group = "pidgeon";
        Restart = "always";
        RestartSec = 10;
        NoNewPrivileges = true;
        ProtectSystem = "strict";
        ProtectHome = true;
        PrivateTmp = true;
      };
    };
  })
  ];
}
