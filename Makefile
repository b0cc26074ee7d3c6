# arc2face build. `make` builds build/arc2face and build/libarc2face.a;
# `make test` installs missing packages (tools/deps.sh), builds and runs the suite.
# CUDA sources (kernels/cuda/*.cu) are compiled by nvcc for CUDA_ARCH whenever
# nvcc is present, and skipped with a notice otherwise.

CC      ?= gcc
CFLAGS  ?= -O2 -march=native -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -fopenmp -MMD -MP
LDLIBS  += -lpng -ljpeg -lcjson -lz -lm -fopenmp -lpthread
NVCC    ?= $(shell command -v nvcc 2>/dev/null)
CUDA_ARCH ?= 80 90
NVCCFLAGS ?= -O3 -std=c++17 $(foreach a,$(CUDA_ARCH),-gencode arch=compute_$(a),code=sm_$(a))

B := build
LIB_SRC  := $(wildcard kernels/*.c kernels/cpu/*.c nn/*.c data/*.c infer/*.c train/*.c)
CLI_SRC  := $(wildcard cli/*.c)
TEST_SRC := $(wildcard tests/*.c)
CU_SRC   := $(wildcard kernels/cuda/*.cu)
CU_HDR   := $(wildcard kernels/cuda/*.cuh kernels/cuda/*.h kernels/*.h)
GPU_TEST_SRC := $(wildcard tests/gpu/*.c)
GPU_TEST_OBJ := $(GPU_TEST_SRC:%.c=$(B)/%.o)
SIMTCC   := tools/simt/simtcc
SIMT_DEPS := $(wildcard tools/simt/*.cpp tools/simt/*.pl tools/simt/include/*.h) $(SIMTCC)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
CUDA_LIBS := -L$(CUDA_HOME)/lib64 -lcudart -lcublasLt -lcublas -lstdc++
# cuDNN (the "cudnn" path of kernels/cuda/conv2d.cu): cudnn.h in the CUDA include dir, else the pip
# nvidia-cudnn package; without it the path is compiled out.
ifneq ($(wildcard $(CUDA_HOME)/include/cudnn.h),)
HAVE_CUDNN := 1
NVCCFLAGS += -DA2F_HAVE_CUDNN
CUDA_LIBS += -lcudnn
else ifneq ($(NVCC),)
CUDNN_PIP := $(shell python3 -c 'import nvidia.cudnn as m; print(m.__path__[0])' 2>/dev/null)
ifneq ($(and $(CUDNN_PIP),$(wildcard $(CUDNN_PIP)/include/cudnn.h)),)
HAVE_CUDNN := 1
NVCCFLAGS += -DA2F_HAVE_CUDNN -I$(CUDNN_PIP)/include
CUDA_LIBS += -L$(CUDNN_PIP)/lib -l:libcudnn.so.9 -Wl,-rpath,$(CUDNN_PIP)/lib
endif
endif
LIB_OBJ  := $(LIB_SRC:%.c=$(B)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(B)/%.o)
TEST_OBJ := $(TEST_SRC:%.c=$(B)/%.o)
CU_OBJ   := $(CU_SRC:%.cu=$(B)/%.o)

.PHONY: all deps test test-only test-gpu bench bench-cpu bench-unet-cpu fuzz clean cuda demo
all: $(B)/arc2face $(B)/libarc2face.a cuda

deps:
	@tools/deps.sh

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(B)/libarc2face.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# With nvcc the CLI links the CUDA backend too (--device cuda); the CUDA
# runtime libraries load on any machine with the toolkit, and without a GPU
# --device cuda reports that no device is present.
ifeq ($(NVCC),)
$(B)/arc2face: $(CLI_OBJ) $(B)/libarc2face.a
	$(CC) $(CFLAGS) $(CLI_OBJ) $(B)/libarc2face.a $(LDLIBS) -o $@
else
$(B)/arc2face: $(CLI_OBJ) $(B)/libarc2face_cuda.a $(B)/libarc2face.a
	$(CC) $(CFLAGS) $(CLI_OBJ) -Wl,-u,cuda_backend $(B)/libarc2face_cuda.a $(B)/libarc2face.a $(CUDA_LIBS) $(LDLIBS) -o $@
endif

$(B)/test_arc2face: $(TEST_OBJ) $(B)/libarc2face.a
	$(CC) $(CFLAGS) $(TEST_OBJ) $(B)/libarc2face.a $(LDLIBS) -o $@

ifeq ($(NVCC),)
cuda:
	@echo "nvcc not found: skipping CUDA sources ($(words $(CU_SRC)) files)"
else
cuda: $(B)/libarc2face_cuda.a
$(B)/kernels/cuda/%.o: kernels/cuda/%.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@
$(B)/libarc2face_cuda.a: $(CU_OBJ)
	@rm -f $@
	ar rcs $@ $^
endif

# CUDA kernel tests run on the CPU: every .cu compiled by the SIMT emulator,
# with AddressSanitizer on device memory, checked against the CPU reference.
$(B)/test_cuda_emu: $(CU_SRC) $(CU_HDR) $(GPU_TEST_SRC) tests/gpu/gpu_test.h tests/main.c tests/fixture.c tests/test.h \
		$(B)/libarc2face.a $(SIMT_DEPS)
	$(SIMTCC) --asan -O1 $(CU_SRC) $(GPU_TEST_SRC) tests/main.c tests/fixture.c $(B)/libarc2face.a -lpng -ljpeg -lcjson -lz -o $@

# The same tests linked against the nvcc-built kernels, for a real GPU.
$(B)/test_cuda_gpu: $(GPU_TEST_OBJ) $(B)/tests/main.o $(B)/tests/fixture.o $(B)/libarc2face_cuda.a $(B)/libarc2face.a
	$(CC) $(CFLAGS) $^ $(CUDA_LIBS) $(LDLIBS) -o $@

# cuDNN checks our attention graphs without a GPU (tests/cudnn/): built when nvcc
# and cuDNN are both present.
$(B)/test_cudnn_offline: $(B)/tests/cudnn/test_cudnn_offline.o $(B)/tests/main.o $(B)/libarc2face_cuda.a \
		$(B)/libarc2face.a
	$(CC) $(CFLAGS) $^ $(CUDA_LIBS) $(LDLIBS) -o $@
CUDNN_OFFLINE := $(if $(HAVE_CUDNN),$(B)/test_cudnn_offline)

# The whole suite: deps, build (CUDA included when nvcc exists), the fuzz
# targets' smoke check (build + their seeds), then the CPU tests, the CUDA
# kernels under the emulator (threads in shuffled order) and, with cuDNN,
# cuDNN's offline check of the attention graphs.
test: deps
	@$(MAKE) --no-print-directory all $(B)/test_arc2face $(B)/test_cuda_emu $(CUDNN_OFFLINE)
	@tools/fuzz/run.sh 0
	@tests/run.sh $(B)/test_arc2face "env SIMT_SHUFFLE=1 $(B)/test_cuda_emu" \
		$(if $(CUDNN_OFFLINE),"tests/cudnn/run_offline.sh $(CUDNN_OFFLINE)")

# On a machine with a GPU: the kernel tests on the device, then under
# compute-sanitizer memcheck and racecheck where the tool exists.
test-gpu: deps
	@$(MAKE) --no-print-directory all $(B)/test_cuda_gpu
	@tests/run.sh $(B)/test_cuda_gpu
	@if command -v compute-sanitizer >/dev/null; then \
		compute-sanitizer --tool memcheck --error-exitcode 1 $(B)/test_cuda_gpu >$(B)/memcheck.log 2>&1 \
			&& echo "memcheck: clean" || { echo "memcheck: errors, see $(B)/memcheck.log"; exit 1; }; \
		compute-sanitizer --tool racecheck --error-exitcode 1 $(B)/test_cuda_gpu >$(B)/racecheck.log 2>&1 \
			&& echo "racecheck: clean" || { echo "racecheck: errors, see $(B)/racecheck.log"; exit 1; }; \
	else echo "compute-sanitizer not found: memcheck/racecheck skipped"; fi

# CPU benchmark: GEMM and SD1.5-shaped convolutions against OpenBLAS.
bench-cpu: deps
	@tools/deps.sh --bench
	@$(MAKE) --no-print-directory $(B)/bench_cpu
	@$(B)/bench_cpu
$(B)/bench_cpu: tools/bench/bench_cpu.c $(B)/libarc2face.a
	$(CC) $(CFLAGS) $< $(B)/libarc2face.a -lopenblas $(LDLIBS) -o $@

# Whole-model CPU forward, ours vs PyTorch: the SD1.5 UNet at a 64x64 latent,
# batch 1 (random weights, fp32, median of 3 after a warm-up; PROFILE=1 adds
# seconds per op class). The PyTorch side (diffusers, 2 threads) runs when
# diffusers is importable. tools/bench/bench_unet_cpu.c also times CLIP and IResNet.
bench-unet-cpu: $(B)/bench_unet_cpu
	$(B)/bench_unet_cpu unet configs/sd15_unet.json 64 1 3
	@if python3 -c 'import diffusers' 2>/dev/null; then \
		python3 tools/bench/bench_unet_torch.py unet configs/sd15_unet.json 64 1 3; \
	else echo "bench-unet-cpu: diffusers not importable: PyTorch side skipped"; fi
$(B)/bench_unet_cpu: tools/bench/bench_unet_cpu.c $(B)/libarc2face.a
	$(CC) $(CFLAGS) $< $(B)/libarc2face.a $(LDLIBS) -o $@

# `make bench`: the CPU benchmark, then, when nvcc exists and nvidia-smi sees a GPU,
# the CUDA kernels' benchmark (tools/bench/bench_cuda.c: GB/s and %DRAM, GEMM TFLOP/s,
# conv and attention paths against cuDNN) and the whole UNet step, ours and diffusers'.
bench:
	@$(MAKE) --no-print-directory bench-cpu || echo "bench: CPU benchmark unavailable (OpenBLAS not installable here)"
	@if [ -n "$(NVCC)" ] && nvidia-smi -L >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory $(B)/bench_cuda $(B)/bench_unet_gpu && $(B)/bench_cuda && \
		$(B)/bench_unet_gpu configs/sd15_unet.json 64 2 10 && \
		{ python3 -c 'import diffusers' 2>/dev/null && \
			python3 tools/bench/bench_unet_torch.py unet configs/sd15_unet.json 64 2 10 --device cuda || \
			echo "bench: diffusers not importable: PyTorch UNet side skipped"; }; \
	else echo "bench: no nvcc or no GPU (nvidia-smi -L failed): CUDA benchmark skipped"; fi
$(B)/bench_cuda: tools/bench/bench_cuda.c $(B)/libarc2face_cuda.a $(B)/libarc2face.a
	$(CC) $(CFLAGS) -I$(CUDA_HOME)/include $< $(B)/libarc2face_cuda.a $(B)/libarc2face.a $(CUDA_LIBS) $(LDLIBS) -o $@
# The whole SD1.5 UNet on the GPU, inference and training step (tools/bench/bench_unet_gpu.c;
# the PyTorch side: tools/bench/bench_unet_torch.py unet ... --device cuda).
$(B)/bench_unet_gpu: tools/bench/bench_unet_gpu.c $(B)/libarc2face_cuda.a $(B)/libarc2face.a
	$(CC) $(CFLAGS) -I$(CUDA_HOME)/include $< -Wl,-u,cuda_backend $(B)/libarc2face_cuda.a $(B)/libarc2face.a \
		$(CUDA_LIBS) $(LDLIBS) -o $@

# `make demo`: deps, build, then `arc2face generate` on the bundled tiny
# Arc2Face-shaped model (assets/demo, made by tools/make_demo_model.py) with a
# bundled ID vector; writes $(B)/demo/img_*.png and grid.png.
demo: deps
	@$(MAKE) --no-print-directory $(B)/arc2face
	@rm -rf $(B)/demo
	$(B)/arc2face generate --model assets/demo/model --base assets/demo/base --tokenizer assets/tokenizer \
		--embedding assets/demo/id.npy --n 4 --steps 10 --size 128 --seed 0 --out $(B)/demo --grid
	@echo
	@echo "demo: the bundled model is TINY and UNTRAINED (random weights, ~5 MB): its pictures are"
	@echo "      noise-like by design. It shows the pipeline and file layout end to end, nothing more."
	@echo "      For real faces, fetch the released weights: tools/get-weights.sh prints the download and"
	@echo "      conversion commands (tools/get-weights.sh --run runs them), then:"
	@echo "      $(B)/arc2face generate --model models --base models/sd15 --photo face.jpg --arcface models/arcface.safetensors \\"
	@echo "          --detector models/antelopev2/scrfd_10g_bnkps.safetensors --n 4 --out out --grid"

# Fuzz the parsers of outside files (safetensors, torch zip/pickle, PNG/JPEG; libFuzzer via clang) for FUZZ_SECONDS.
FUZZ_SECONDS ?= 60
fuzz: deps
	@tools/fuzz/run.sh $(FUZZ_SECONDS)

clean:
	rm -rf $(B)

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(GPU_TEST_OBJ:.o=.d) $(B)/tests/cudnn/test_cudnn_offline.d
