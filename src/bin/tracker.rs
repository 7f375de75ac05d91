fn main() {
    eprintln!("error: tracker is not built yet");
    std::process::exit(1);
}
