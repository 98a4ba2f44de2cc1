//! `isobench-sandbox`: performs an instance's isolation steps and executes its workload.
//! Started by the local backend only; see `isobench_local::sandbox`.

fn main() {
    isobench_local::sandbox::main()
}
