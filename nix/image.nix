# A Raspberry Pi 4 sd-image for one rumor device.
#
# Imported as a NixOS module by the flake's nixosConfigurations.<id>, with
# `device` (the id), `pidgeon` (the flake input) and `root` (the flake's
# source) passed through specialArgs. The image carries no secret: CI runs
# `rumor inject` on the built image to add the device's age key, and the
# SOPS file in the store is only ciphertext.
{ config, lib, pkgs, modulesPath, device, pidgeon, root, ... }:
let
  system = pkgs.stdenv.hostPlatform.system;
  pidgeonPackages = pidgeon.packages.${system} or { };
  # pidgeon's own NixOS module (services.pidgeon), which runs the daemon.
  pidgeonModule = pidgeon.nixosModules.default or pidgeon.nixosModules.pidgeonCli or null;
in
{
  imports = [
    "${modulesPath}/installer/sd-card/sd-image-aarch64.nix"
    ./module.nix
  ] ++ lib.optional (pidgeonModule != null) pidgeonModule;

  nixpkgs.hostPlatform = lib.mkDefault "aarch64-linux";

  # The root partition is labelled NIXOS_SD by the sd-image module; rumor
  # inject looks for exactly that label.
  sdImage = {
    imageBaseName = "rumor-${device}";
    # Compressed by CI after the key is injected, not by Nix.
    compressImage = false;
  };

  hardware.enableRedistributableFirmware = true;
  boot.kernelPackages = lib.mkDefault pkgs.linuxPackages_rpi4;

  services.rumor-device = {
    enable = true;
    inherit device;
    deviceFile = root + "/devices/${device}.toml";
    secretsFile = root + "/secrets/${device}.yaml";
    # Without pidgeon's module, rumor's fallback unit runs the package.
    pidgeon.useModule = pidgeonModule != null;
    pidgeon.package = pidgeonPackages.default or pidgeonPackages.pidgeon or null;
  };

  environment.systemPackages = lib.optional (config.services.rumor-device.pidgeon.package != null) config.services.rumor-device.pidgeon.package;

  system.stateVersion = "24.11";
}
