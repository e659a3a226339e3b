# The sops-nix secret declarations of one device, from its devices/<id>.toml.
#
# A pure function, builtins only, so it evaluates without nixpkgs (the
# tests run it with plain nix-instantiate) and the flake can export it as
# lib.deviceSecrets. The result is an attrset for `sops.secrets`: one entry
# per key of the device's SOPS file secrets/<id>.yaml, each saying who may
# read the decrypted file and which services to restart when it changes.
#
#   import ./secrets.nix { device = ./devices/pidgeon-1.toml; }
#   import ./secrets.nix { device = builtins.fromTOML "..."; adminUser = "ops"; }
#
# Users default from the device's [vars] (admin, nebula_network) so a
# device file can rename them without touching Nix.
{
  # The device: a path to its TOML, or the TOML already parsed.
  device,
  # The login user whose password hash and SSH keys the file carries.
  adminUser ? null,
  # The services.nebula.networks.<name> the device joins; nebula runs as
  # the user nebula-<name>.
  nebulaNetwork ? null,
  # The user the pidgeon meter daemon runs as.
  pidgeonUser ? "pidgeon",
}:
let
  parsed =
    if builtins.isAttrs device then
      device
    else if builtins.isPath device || builtins.isString device then
      builtins.fromTOML (builtins.readFile device)
    else
      throw "rumor: device must be a path to devices/<id>.toml or its parsed attrset, not a ${builtins.typeOf device}";

  vars = parsed.vars or { };

  checked =
    if !(parsed ? ip) then
      throw "rumor: device '${parsed.name or "?"}' has no ip; add ip = \"10.8.0.N\" to its devices/<id>.toml"
    else
      parsed;

  admin = if adminUser != null then adminUser else vars.admin or "admin";
  network = if nebulaNetwork != null then nebulaNetwork else vars.nebula_network or "rumor";
  nebulaUser = "nebula-${network}";

  # One declaration; `key` is the top-level YAML key (dots are literal:
  # sops-nix only splits keys on "/").
  secret = key: attrs: {
    inherit key;
    mode = "0400";
    owner = "root";
    group = "root";
    restartUnits = [ ];
  } // attrs;

  postgres = key: secret key {
    owner = "postgres";
    group = "postgres";
    restartUnits = [ "postgresql.service" ];
  };

  nebula = key: secret key {
    owner = nebulaUser;
    group = nebulaUser;
    restartUnits = [ "nebula@${network}.service" ];
  };
in
builtins.seq checked {
  "postgres.sql" = postgres "postgres.sql";
  "postgres.crt" = postgres "postgres.crt";
  "postgres.key" = postgres "postgres.key";
  "postgres.ca.crt" = postgres "postgres.ca.crt";

  "nebula.ca.crt" = nebula "nebula.ca.crt";
  "nebula.crt" = nebula "nebula.crt";
  "nebula.key" = nebula "nebula.key";

  # Read by NetworkManager-ensure-profiles, which runs as root.
  "wifi.env" = secret "wifi.env" { restartUnits = [ "NetworkManager-ensure-profiles.service" ]; };

  # hashedPasswordFile is read while users are created, before other
  # secrets are decrypted: sops-nix must decrypt it earlier.
  "user.hash" = secret "user.hash" { neededForUsers = true; };

  # Where NixOS's sshd already looks (AuthorizedKeysFile includes
  # /etc/ssh/authorized_keys.d/%u); sshd's StrictModes wants the user or
  # root as owner.
  "user.authorized_keys" = secret "user.authorized_keys" {
    owner = admin;
    path = "/etc/ssh/authorized_keys.d/${admin}";
  };

  "pidgeon.env" = secret "pidgeon.env" {
    owner = pidgeonUser;
    group = pidgeonUser;
    restartUnits = [ "pidgeon.service" ];
  };
}
