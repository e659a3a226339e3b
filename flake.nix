{
  description = "rumor: provision the secrets of a fleet of edge devices, and the NixOS side that consumes them";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.11";

    sops-nix.url = "github:Mic92/sops-nix";
    sops-nix.inputs.nixpkgs.follows = "nixpkgs";

    pidgeon.url = "github:altibiz/pidgeon";
    pidgeon.inputs.nixpkgs.follows = "nixpkgs";
  };

  outputs = { self, nixpkgs, sops-nix, pidgeon, ... }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      # Every devices/<id>.toml becomes nixosConfigurations.<id>.
      deviceIds =
        let
          dir = ./devices;
          files = if builtins.pathExists dir then builtins.readDir dir else { };
          tomls = builtins.filter (name: files.${name} == "regular" && nixpkgs.lib.hasSuffix ".toml" name) (builtins.attrNames files);
        in
        map (nixpkgs.lib.removeSuffix ".toml") tomls;

      device = id: nixpkgs.lib.nixosSystem {
        specialArgs = { device = id; inherit pidgeon; root = self; };
        modules = [
          sops-nix.nixosModules.sops
          # aarch64 throughout: CI builds on an arm64 runner, so the binary
          # cache applies (cross-compiling would rebuild the world).
          ./nix/image.nix
        ];
      };
    in
    {
      packages = forSystems (pkgs: {
        rumor = pkgs.rustPlatform.buildRustPackage {
          pname = "rumor";
          version = (builtins.fromTOML (builtins.readFile ./Cargo.toml)).package.version;
          src = nixpkgs.lib.cleanSource ./.;
          cargoLock.lockFile = ./Cargo.lock;
          # yescrypt comes from libxcrypt (libcrypt.so.1), linked with -lcrypt.
          buildInputs = [ pkgs.libxcrypt ];
          # The integration tests need guestfish, sops and OpenBao; CI runs them.
          doCheck = false;
          # Completions and the man page come from the binary's own clap
          # definitions, so they are made by running it (not when cross-compiling).
          nativeBuildInputs = [ pkgs.installShellFiles ];
          postInstall = pkgs.lib.optionalString (pkgs.stdenv.buildPlatform.canExecute pkgs.stdenv.hostPlatform) ''
            installShellCompletion --cmd rumor \
              --bash <($out/bin/rumor completions bash) \
              --zsh <($out/bin/rumor completions zsh) \
              --fish <($out/bin/rumor completions fish)
            $out/bin/rumor man > rumor.1
            installManPage rumor.1
          '';
          meta.mainProgram = "rumor";
        };
        default = self.packages.${pkgs.system}.rumor;
      });

      # The device module plus sops-nix, which it needs.
      nixosModules.default = {
        imports = [ sops-nix.nixosModules.sops ./nix/module.nix ];
      };

      # deviceSecrets { device = ./devices/<id>.toml; } -> sops.secrets
      lib.deviceSecrets = import ./nix/secrets.nix;

      # nixosConfigurations.pidgeon-1.config.system.build.sdImage, etc.
      nixosConfigurations = nixpkgs.lib.genAttrs deviceIds device;
    };
}
