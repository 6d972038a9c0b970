fn main() {
    print!("{}", federation_controller::crd::crd_yaml().unwrap());
}
