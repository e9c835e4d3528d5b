function main(params) {
  return { message: "Hello " + (params.name || "World") };
}
