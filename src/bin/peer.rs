fn main() {
    eprintln!("error: peer is not built yet");
    std::process::exit(1);
}
