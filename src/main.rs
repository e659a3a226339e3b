fn main() {
    std::process::exit(rumor::cli::main());
}
