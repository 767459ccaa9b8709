// Programmatic dependent launch (Hopper, sm_90): a kernel the backend launches with CudaDevice.LaunchDependent may
// start while the stream's previous kernel still runs. Before it reads anything that kernel (or any earlier work)
// wrote, and before it writes anything at all, it calls wait_for_previous_grid(), which returns once the previous
// grid has completed and its writes are visible. let_next_grid_start() then lets the next dependent kernel's
// blocks be scheduled as SMs free up, rather than only after this grid's last block has ended. Both are no-ops
// on older GPUs and in a plain launch.

__device__ __forceinline__ void wait_for_previous_grid() {
#if __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void let_next_grid_start() {
#if __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
