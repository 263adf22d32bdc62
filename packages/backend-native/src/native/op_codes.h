// Op codes of the table-driven kernels (binary, unary, reduce) and their tfjs kernel names, one table
// for both devices: each addon exports them (binaryOps, unaryOps, reduceOps) for the JS side.
#pragma once

namespace vlmix {
namespace opcodes {

namespace bin {
enum Op {
  kAdd, kSub, kMul, kDiv, kMax, kMin, kPow, kSqDiff, kFloorDiv, kMod, kAtan2, kPrelu, kEluGrad,
  kEq, kNe, kLt, kLe, kGt, kGe, kAnd, kOr, kCount
};
inline constexpr const char* kNames[] = {
    "Add", "Sub", "Multiply", "RealDiv", "Maximum", "Minimum", "Pow", "SquaredDifference", "FloorDiv", "Mod",
    "Atan2", "Prelu", "EluGrad", "Equal", "NotEqual", "Less", "LessEqual", "Greater", "GreaterEqual",
    "LogicalAnd", "LogicalOr"};
static_assert(sizeof(kNames) / sizeof(kNames[0]) == kCount, "one name per binary op");
}  // namespace bin

namespace un {
enum Op {
  kNeg, kExp, kLog, kLog1p, kSqrt, kRsqrt, kSquare, kAbs, kTanh, kSigmoid, kRelu, kErf, kSin, kCos,
  kSign, kFloor, kCeil, kRound, kReciprocal, kStep, kClip, kElu, kLeakyRelu, kSoftplus, kRelu6,
  kSelu, kExpm1, kTan, kAtan, kAsin, kAcos, kSinh, kCosh, kAsinh, kAcosh, kAtanh,
  kIsNan, kIsInf, kIsFinite, kLogicalNot, kCount
};
inline constexpr const char* kNames[] = {
    "Neg", "Exp", "Log", "Log1p", "Sqrt", "Rsqrt", "Square", "Abs", "Tanh", "Sigmoid", "Relu", "Erf", "Sin",
    "Cos", "Sign", "Floor", "Ceil", "Round", "Reciprocal", "Step", "ClipByValue", "Elu", "LeakyRelu",
    "Softplus", "Relu6", "Selu", "Expm1", "Tan", "Atan", "Asin", "Acos", "Sinh", "Cosh", "Asinh", "Acosh",
    "Atanh", "IsNan", "IsInf", "IsFinite", "LogicalNot"};
static_assert(sizeof(kNames) / sizeof(kNames[0]) == kCount, "one name per unary op");
}  // namespace un

namespace red {
enum Op { kSum, kMean, kMax, kMin, kProd, kAll, kAny, kArgMax, kArgMin, kCount };
inline constexpr const char* kNames[] = {"Sum", "Mean", "Max", "Min", "Prod", "All", "Any", "ArgMax", "ArgMin"};
static_assert(sizeof(kNames) / sizeof(kNames[0]) == kCount, "one name per reduction");
}  // namespace red

}  // namespace opcodes
}  // namespace vlmix
